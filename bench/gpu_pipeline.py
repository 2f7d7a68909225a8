"""The reader in a GPU training pipeline, against DALI's own fn.readers.file in the same run
(issue 8), on one GPU:

- decode: reader -> nvJPEG ("mixed") decoder -> resize (shorter side 256) -> crop 224, labels
  .gpu(): what training does with a GPU;
- raw: reader -> .gpu() of the encoded bytes and labels: the reader's own ceiling.

    python bench/gpu_pipeline.py [--host H --port P] [--train-per-class 300] [--bs 256]

Same images for both readers (generated Imagenette stand-in, ingested into a local server that
it starts unless --port is given, then restarted so reads come from SSTables). Runs interleave
(cassandra, file, cassandra, file ...), each run's epoch 0 and the first round are warm-up. Prints
images/s per pipeline and the ratio cassandra / file; writes OUT.json. Needs a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cassandra_dali import server
from cassandra_dali.client import Connection
from cassandra_dali.gpus import dali_gpu_count
from cassandra_dali.sources import CassandraSource, FileSource
from compare_readers import KEYSPACE, REPO, ingest_and_list, machine, prepare_data
from nvidia.dali import fn, pipeline_def, types

READERS = ("cassandra", "file")
MODES = ("decode", "raw")


def define(reader: str, mode: str, args: argparse.Namespace, conn: Connection, rows: Path) -> Any:
    """The pipeline, not built (tests/test_gpu_definitions.py defines it on CPU machines)."""

    @pipeline_def(batch_size=args.bs, num_threads=args.threads, device_id=0,
                  prefetch_queue_depth=2)
    def pipe() -> tuple[Any, Any]:
        source = (
            CassandraSource(f"{KEYSPACE}.data_train", rows_file=rows, connection=conn,
                            options={"prefetch_buffers": args.prefetch,
                                     "io_threads": args.io_threads})
            if reader == "cassandra" else FileSource(args.root / "train")
        )
        data, labels = source.read()
        if mode == "raw":
            return data.gpu(), labels.gpu()
        decoded = fn.decoders.image(data, device="mixed", output_type=types.DALIImageType.RGB)
        resized: Any = fn.resize(decoded, resize_shorter=256)
        return fn.crop(resized, crop=(224, 224)), labels.gpu()

    return pipe()


def build(reader: str, mode: str, args: argparse.Namespace, conn: Connection, rows: Path) -> Any:
    pipe = define(reader, mode, args, conn, rows)
    pipe.build()
    return pipe


def run_epochs(pipe: Any, batches: int, epochs: int, bs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        for _ in range(batches):
            outputs = pipe.run()
        outputs[1].as_cpu()  # waits for the last batch's GPU work (labels: a small copy)
        rates.append(batches * bs / (time.perf_counter() - started))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="an existing server")
    parser.add_argument("--root", type=Path,
                        default=server.cache_root() / "bench" / "imagenette-gpu")
    parser.add_argument("--train-per-class", type=int, default=300, help="(%(default)s)")
    parser.add_argument("--bs", type=int, default=256, help="(%(default)s)")
    parser.add_argument("--threads", type=int, default=8, help="DALI CPU threads (%(default)s)")
    parser.add_argument("--io-threads", type=int, default=4, help="(%(default)s)")
    parser.add_argument("--prefetch", type=int, default=2, help="(%(default)s)")
    parser.add_argument("--epochs", type=int, default=4, help="per run, first warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="(%(default)s), first warm-up")
    parser.add_argument("--heap", default="4G")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_pipeline")
    args = parser.parse_args()
    if args.epochs < 2 or args.rounds < 2:
        parser.error("--epochs and --rounds must be >= 2 (the first of each is warm-up)")
    gpus, why = dali_gpu_count()
    if gpus == 0:
        print(f"bench/gpu_pipeline.py needs a GPU: DALI sees none {why}".rstrip(), file=sys.stderr)
        return 2

    data = prepare_data(args.root, args.train_per_class, 0)
    own_dir = None
    conn = Connection(host=args.host, port=args.port or 9042)
    if args.port is None:
        own_dir = server.cache_root() / "servers" / "bench-gpu"
        info = server.start(server.ServerConfig(dir=own_dir, heap=args.heap, cluster_name="bench"))
        conn = Connection(host=info.host, port=info.port)
    try:
        conn, ids, rows = ingest_and_list(conn, args.root, own_dir, args.heap)
        host = machine(conn)
        batches = -(-len(ids) // args.bs)
        measured: dict[str, list[float]] = {f"{r}_{m}": [] for m in MODES for r in READERS}
        for round_ in range(args.rounds):
            for mode in MODES:
                for reader in READERS:
                    pipe = build(reader, mode, args, conn, rows)
                    rates = run_epochs(pipe, batches, args.epochs, args.bs)
                    del pipe
                    if round_ > 0:
                        measured[f"{reader}_{mode}"] += rates[1:]
                    print(f"round {round_} {reader:<9} {mode:<6} "
                          + " ".join(f"{r:8.0f}" for r in rates) + " images/s"
                          + (" (warm-up round)" if round_ == 0 else ""))
    finally:
        if own_dir is not None:
            server.stop(own_dir)
    figures = {k: {"images_per_s": statistics.fmean(v),
                   "std": statistics.stdev(v) if len(v) > 1 else 0.0}
               for k, v in measured.items()}
    ratios = {m: figures[f"cassandra_{m}"]["images_per_s"] / figures[f"file_{m}"]["images_per_s"]
              for m in MODES}
    for key, f in figures.items():
        print(f"{key:<18} {f['images_per_s']:9.0f} ± {f['std']:.0f} images/s")
    print("cassandra / file: " + ", ".join(f"{m} {r:.2f}" for m, r in ratios.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"machine": host, "gpus": gpus, "data": data, "args": {k: str(v) for k, v in
                                                             vars(args).items()},
         "results": figures, "ratios": ratios, "when": time.strftime("%Y-%m-%d %H:%M:%S")},
        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
