"""Distributed training (issue 5): torchrun runs of both scripts (the trainer's
pure parts are in test_trainer_parts.py).

The integration tests train a small ResNet-18 at 64 px on a generated Imagenette stand-in, with
two CPU processes (gloo), from Cassandra and from the same images as files: both ranks finish,
the loss goes down, a checkpoint is written, and a run stopped and resumed from it computes the
same per-iteration losses as one that never stopped (the checkpoint holds every rank's DALI
pipeline state), also when --max-iters ends epochs before the reader's.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from cassandra_dali import server
from cassandra_dali.client import Connection, cql_files, token_scan
from cassandra_dali.dataset import images, ingest, rows_files
from cassandra_dali.training import checkpoint
from cassandra_dali.training.trainer import build_model

if TYPE_CHECKING:
    from cassandra.cluster import Session

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "imagenette"
FILE_SCRIPT = EXAMPLES / "distrib_train_from_file.py"
CASSANDRA_SCRIPT = EXAMPLES / "distrib_train_from_cassandra.py"

# 160 training and 60 validation images: 5 iterations of 2 x 16 per epoch.
TRAIN_PER_CLASS = 16
VAL_PER_CLASS = 6
BATCH = 16
# A setting that learns within a few epochs on 2 CPU cores (found by trying: the reference's
# --lr 0.4 at this tiny global batch diverges from scratch).
SMALL_RUN = [
    "-a", "resnet18", "--num-classes", "10", "--b", str(BATCH), "--workers", "1", "--lr", "0.1",
    "--warmup-epochs", "1", "--crop-size", "64", "--val-size", "72", "--print-freq", "100",
    "--seed", "7",
]
RUN_TIMEOUT_S = 300


# ----------------------------------------------------------------------------------------------
# torchrun runs against the real server
# ----------------------------------------------------------------------------------------------


class Data:
    def __init__(self, root: Path, connection: Connection, keyspace: str, rows: dict[str, Path]):
        self.root = root
        self.connection = connection
        self.keyspace = keyspace
        self.rows = rows

    def source_args(self, source: str, *, server_flags: bool = True) -> list[str]:
        if source == "file":
            return [str(self.root / "train"), str(self.root / "val")]
        server = ["--host", self.connection.host, "--port", str(self.connection.port)]
        return [
            *(server if server_flags else []),
            "--train-data-table", f"{self.keyspace}.data_train",
            "--train-rows-fn", str(self.rows["train"]),
            "--val-data-table", f"{self.keyspace}.data_val", "--val-rows-fn", str(self.rows["val"]),
        ]


@pytest.fixture(scope="module")
def data(
    tmp_path_factory: pytest.TempPathFactory, cassandra_server: server.ServerInfo,
    cql_session: Session, keyspace: str,
) -> Data:
    """The same generated images as files and in Cassandra (tables from create_tables.cql)."""
    root = tmp_path_factory.mktemp("imagenette")
    images.generate(root, TRAIN_PER_CLASS, VAL_PER_CLASS, seed=0, workers=2)
    connection = Connection(
        host=cassandra_server.host, port=cassandra_server.port,
        username=cassandra_server.username, password=cassandra_server.password,
        ca_cert=str(cassandra_server.ca_cert) if cassandra_server.ca_cert else None,
        protocol_version=cassandra_server.protocol_version,
    )
    cql_files.apply(cql_session, EXAMPLES / "create_tables.cql", keyspace=keyspace)
    rows = {}
    for split in ("train", "val"):
        config = ingest.IngestConfig(f"{keyspace}.data_{split}", f"{keyspace}.metadata_{split}",
                                     connection=connection)
        summary = ingest.ingest_split(root, split, config)
        assert summary.complete and summary.written == 10 * (
            TRAIN_PER_CLASS if split == "train" else VAL_PER_CLASS)
        rows[split] = root / f"{split}.rows"
        rows_files.write_rows_file(rows[split], token_scan.scan_ids(cql_session, f"{keyspace}.metadata_{split}"))
    return Data(root, connection, keyspace, rows)


def _torchrun(script: Path, args: list[str], *, nproc: int = 2,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(script), *args]
    return _run(command, env=env, cwd=cwd)


def _run(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              env=full_env, cwd=cwd, check=False)
    except subprocess.TimeoutExpired as error:
        partial = [o.decode(errors="replace") if isinstance(o, bytes) else (o or "")
                   for o in (error.stdout, error.stderr)]
        raise AssertionError(f"{command} timed out; output:\n{''.join(partial)[-6000:]}") from None
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{output[-6000:]}"
    return output


def _events(path: Path, event: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [e for e in map(json.loads, lines) if e["event"] == event]


def _epoch_means(iters: list[dict[str, Any]]) -> dict[int, float]:
    by_epoch: dict[int, list[float]] = {}
    for e in iters:
        by_epoch.setdefault(e["epoch"], []).append(e["loss"])
    return {epoch: sum(v) / len(v) for epoch, v in by_epoch.items()}


def _momentum_norm(optimizer_state: dict[str, Any]) -> float:
    buffers = [s["momentum_buffer"] for s in optimizer_state["state"].values()]
    return float(sum(b.float().norm() ** 2 for b in buffers) ** 0.5)


def _assert_same_losses(reference: list[dict[str, Any]], resumed: list[dict[str, Any]],
                        epochs: list[int]) -> None:
    """The resumed run's per-iteration losses are the uninterrupted run's, iteration by
    iteration (in practice bit for bit: same weights, same batches, same crops and flips)."""
    expected = [(e["epoch"], e["step"], e["loss"]) for e in reference if e["epoch"] in epochs]
    got = [(e["epoch"], e["step"], e["loss"]) for e in resumed]
    assert [k[:2] for k in got] == [k[:2] for k in expected] and got
    worst = max(abs(a[2] - b[2]) for a, b in zip(got, expected, strict=True))
    assert worst <= 1e-6, f"resumed losses differ by up to {worst}:\n{got}\n{expected}"


def _max_weight_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


@pytest.mark.slow
@pytest.mark.parametrize("source", ["cassandra", "file"])
def test_train_two_ranks_then_resume(source: str, data: Data, tmp_path: Path) -> None:
    script = CASSANDRA_SCRIPT if source == "cassandra" else FILE_SCRIPT

    def run_args(name: str) -> list[str]:
        return [*data.source_args(source), *SMALL_RUN, "--checkpoint-dir", str(tmp_path / name),
                "--log-json", str(tmp_path / f"{name}.jsonl")]

    # 1. Four epochs from scratch without stopping, two ranks on gloo: the reference.
    full_log = tmp_path / "full.jsonl"
    _torchrun(script, [*run_args("full"), "--epochs", "4"])
    (start,) = _events(full_log, "start")
    assert (start["world_size"], start["backend"], start["device"]) == (2, "gloo", "cpu")
    assert start["dali_cpu"] is True and start["precision"] == "O0: fp32"
    assert start["checkpoint_dir"] == str((tmp_path / "full").resolve())
    assert start["steps_per_epoch"] == TRAIN_PER_CLASS * 10 // (2 * BATCH)
    full = _events(full_log, "iter")
    assert len(full) == 4 * start["steps_per_epoch"]
    assert all(math.isfinite(e["loss"]) for e in full)
    means = _epoch_means(full)
    assert means[3] < means[0] - 0.1, f"the loss did not go down: {means}"
    full_epochs = _events(full_log, "epoch")
    assert [e["epoch"] for e in full_epochs] == [0, 1, 2, 3]
    for e in full_epochs:
        assert e["images"] == start["steps_per_epoch"] * 2 * BATCH and e["images_per_s"] > 0
        # Validation covers every image exactly once over both ranks (PARTIAL trims padding).
        assert e["val_samples"] == 10 * VAL_PER_CLASS
        assert 0 <= e["val_top1"] <= e["val_top5"] <= 100

    # 2. The same run stopped after two epochs: the checkpoint holds both ranks' data positions.
    ckpt, log_json = tmp_path / "ckpt", tmp_path / "ckpt.jsonl"
    _torchrun(script, [*run_args("ckpt"), "--epochs", "2"])
    stopped = _events(log_json, "iter")
    _assert_same_losses(full, stopped, [0, 1])
    saved = checkpoint.load(ckpt, torch.device("cpu"))
    assert saved["epoch"] == 2 and saved["arch"] == "resnet18" and saved["world_size"] == 2
    assert len(saved["optimizer"]["state"]) == len(list(build_model("resnet18", 10).parameters()))
    assert not any(k.startswith("module.") for k in saved["state_dict"])
    position = saved["data"]
    assert position["world_size"] == 2 and position["order_seed"] == 7
    assert len(position["pipelines"]) == 2 and all(isinstance(p, bytes) for p in position["pipelines"])
    assert position["pipelines"][0] != position["pipelines"][1]  # one per rank, not rank 0's twice

    # 3. Resumed to four epochs: the epoch counter, the optimizer state and every rank's data
    # position carry on, so epochs 2 and 3 are those of the run that never stopped.
    _torchrun(script, [*run_args("ckpt"), "--epochs", "4", "--resume", str(ckpt / checkpoint.LATEST)])
    (resume,) = _events(log_json, "resume")
    assert resume["epoch"] == 2 and resume["momentum_buffers"] == len(saved["optimizer"]["state"])
    assert resume["momentum_norm"] == pytest.approx(_momentum_norm(saved["optimizer"]), rel=1e-5)
    assert resume["best_top1"] == saved["best_top1"]
    assert (resume["data"], resume["data_reseeded_because"]) == ("restored", None)
    assert _events(log_json, "start")[1]["start_epoch"] == 2
    _assert_same_losses(full, _events(log_json, "iter")[len(stopped):], [2, 3])
    epochs = _events(log_json, "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3]
    for mine, reference in zip(epochs, full_epochs, strict=True):
        assert mine["val_loss"] == pytest.approx(reference["val_loss"], abs=1e-6)
        assert mine["val_top1"] == reference["val_top1"]
    final = checkpoint.load(ckpt, torch.device("cpu"))
    assert final["epoch"] == 4
    reference_final = checkpoint.load(tmp_path / "full", torch.device("cpu"))
    assert _max_weight_difference(final["state_dict"], reference_final["state_dict"]) <= 1e-6

    # 4. Validation alone, as one plain process (no torchrun, no process group): the same
    # metrics as the two ranks' all-reduced ones for the same weights.
    last = epochs[-1]
    _run([sys.executable, str(script), *run_args("ckpt"), "--resume", str(ckpt), "--evaluate"])
    (evaluated,) = _events(log_json, "validate")
    assert evaluated["samples"] == last["val_samples"]
    assert abs(evaluated["top1"] - last["val_top1"]) <= 100 / last["val_samples"] + 1e-9
    assert evaluated["loss"] == pytest.approx(last["val_loss"], rel=1e-3)


@pytest.mark.slow
def test_short_mixed_precision_run_from_the_environment_resumes_exactly(
    data: Data, tmp_path: Path,
) -> None:
    """--opt-level O2 on CPU is bf16 autocast without a scaler; --max-iters caps the epochs;
    the server comes from CASSANDRA_HOST/CASSANDRA_PORT. The epochs end before the reader's
    (5 batches per rank), so the checkpoint must hold the reader's real position: resumed after
    epoch 0, epochs 1 and 2 (batches 2-5 of the stream, across the reader's epoch boundary) are
    the uninterrupted run's. A single process resuming the two ranks' checkpoint reseeds."""
    args = data.source_args("cassandra", server_flags=False)
    env = {"CASSANDRA_HOST": data.connection.host, "CASSANDRA_PORT": str(data.connection.port)}

    def run(name: str, epochs: int, *extra: str, nproc: int = 2) -> Path:
        log_json = tmp_path / f"{name}.jsonl"
        _torchrun(CASSANDRA_SCRIPT, [
            *args, *SMALL_RUN, "--opt-level", "O2", "--loss-scale", "128.0", "--epochs",
            str(epochs), "--max-iters", "2", "--checkpoint-dir", str(tmp_path / name),
            "--log-json", str(log_json), *extra,
        ], env=env, nproc=nproc)
        return log_json

    full_log = run("full", 3)
    (start,) = _events(full_log, "start")
    assert start["precision"] == "O2: autocast bf16 on cpu"
    assert start["steps_per_epoch"] == 2 and start["val_steps"] == 2
    full = _events(full_log, "iter")
    assert [(e["epoch"], e["step"]) for e in full] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(math.isfinite(e["loss"]) for e in full)

    ckpt = tmp_path / "ckpt"
    log_json = run("ckpt", 1)
    saved = checkpoint.load(ckpt, torch.device("cpu"))
    assert saved["epoch"] == 1 and saved["data"]["max_iters"] == 2
    run("ckpt", 3, "--resume", str(ckpt))
    (resume,) = _events(log_json, "resume")
    assert resume["data"] == "restored"
    _assert_same_losses(full, _events(log_json, "iter")[2:], [1, 2])

    # One plain process (no process group) cannot continue two ranks' streams: it says so,
    # draws from new seeds, and its own checkpoint holds its single pipeline state.
    _run([sys.executable, str(CASSANDRA_SCRIPT), *args, *SMALL_RUN, "--opt-level", "O2",
          "--epochs", "4", "--max-iters", "2", "--checkpoint-dir", str(ckpt),
          "--log-json", str(log_json), "--resume", str(ckpt)], env=env)
    reseeded = _events(log_json, "resume")[1]
    assert reseeded["data"] == "reseeded"
    assert "written by 2 ranks, this run has 1" in reseeded["data_reseeded_because"]
    single = checkpoint.load(ckpt, torch.device("cpu"))
    assert single["epoch"] == 4 and single["data"]["world_size"] == 1
    assert len(single["data"]["pipelines"]) == 1 and single["data"]["order_seed"] == 7 + 3


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("dali_cpu", [False, True])
def test_two_epochs_on_gpus(data: Data, tmp_path: Path, dali_cpu: bool) -> None:
    """With a GPU: NCCL, fp16 autocast with a fixed loss scale, decoding by nvJPEG ("mixed") or,
    with --dali_cpu (the reference's command line), on the CPU with the images then copied to
    the GPU; two whole epochs, validation included."""
    log_json = tmp_path / "log.jsonl"
    nproc = min(2, torch.cuda.device_count())
    _torchrun(CASSANDRA_SCRIPT, [
        *data.source_args("cassandra"), *SMALL_RUN, "--opt-level", "O2", "--loss-scale", "128",
        "--epochs", "2", "--checkpoint-dir", str(tmp_path / "ck"), "--log-json", str(log_json),
        *(["--dali_cpu"] if dali_cpu else []),
    ], nproc=nproc)
    (start,) = _events(log_json, "start")
    assert start["backend"] == ("nccl" if nproc > 1 else "none") and start["device"] == "cuda:0"
    assert start["dali_cpu"] is dali_cpu
    assert start["precision"] == "O2: autocast fp16 on cuda, loss scale fixed 128"
    iters = _events(log_json, "iter")
    assert {e["epoch"] for e in iters} == {0, 1}
    assert all(math.isfinite(e["loss"]) for e in iters)
    epochs = _events(log_json, "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(e["val_samples"] == 10 * VAL_PER_CLASS for e in epochs)


@pytest.mark.slow
def test_resume_mid_epoch_on_other_world_sizes(data: Data, tmp_path: Path) -> None:
    """2 ranks stopped mid-epoch, continued by 1, stopped again, finished by 3 (gloo, CPU): no
    reseed, the global batch kept where the world size divides it, every training sample of the
    interrupted epoch delivered once over the three runs (the readers' digests), and each new
    rank with its own augmentation stream."""
    from cassandra_dali import checkpoints

    ckpt, log_json = tmp_path / "ckpt", tmp_path / "elastic.jsonl"
    args = [*data.source_args("cassandra"), *SMALL_RUN, "--checkpoint-dir", str(ckpt),
            "--log-json", str(log_json)]
    train_size = 10 * TRAIN_PER_CLASS

    def saved_digests() -> list[checkpoints.Digest]:
        state = checkpoint.load(ckpt, torch.device("cpu"))
        return [checkpoints.reader_checkpoints(p)["Reader"]["delivered"]
                for p in state["data"]["pipelines"]]

    # 1. Two ranks, 2 of 5 steps of epoch 0, then a checkpoint and a stop.
    _torchrun(CASSANDRA_SCRIPT, [*args, "--epochs", "2", "--stop-after", "2"], nproc=2)
    (stopped,) = _events(log_json, "stopped")
    assert (stopped["epoch"], stopped["step"], stopped["images"]) == (0, 2, 2 * 2 * BATCH)
    digests = saved_digests()
    assert [d.count for d in digests] == [2 * BATCH, 2 * BATCH]

    # 2. One process: the global batch of 32 is kept (per-rank 32), one step, stop again.
    _torchrun(CASSANDRA_SCRIPT, [*args, "--epochs", "2", "--stop-after", "1",
                                 "--resume", str(ckpt)], nproc=1)
    resume = _events(log_json, "resume")[-1]
    assert (resume["epoch"], resume["step"], resume["data"]) == (0, 2, "resharded")
    assert resume["data_reseeded_because"] is None and resume["batch_size"] == 2 * BATCH
    stopped = _events(log_json, "stopped")[-1]
    assert (stopped["epoch"], stopped["step"], stopped["images"]) == (0, 3, 2 * BATCH)
    one = saved_digests()
    assert [d.count for d in one] == [2 * BATCH]
    digests += one

    # 3. Three ranks (32 is not divisible by 3: per-rank --b 16) finish epoch 0, then epoch 1.
    output = _torchrun(CASSANDRA_SCRIPT, [*args, "--epochs", "2", "--resume", str(ckpt)],
                       nproc=3)
    assert "not continuing the saved training data position" not in output
    resume = _events(log_json, "resume")[-1]
    assert (resume["data"], resume["batch_size"]) == ("resharded", BATCH)
    epochs = _events(log_json, "epoch")
    assert [(e["epoch"], e["first_step"]) for e in epochs] == [(0, 2), (1, 0)]
    left = train_size - 3 * 2 * BATCH  # 64 samples for 3 ranks of 16: one whole batch each
    assert epochs[0]["images"] == 3 * (left // 3 // BATCH * BATCH)
    delivered = {e["epoch"]: e["ranks"] for e in _events(log_json, "delivered")}
    digests += [checkpoints.Digest(*d) for d in delivered[0]]
    assert checkpoints.exactly_once(digests, train_size), "epoch 0 was not every sample once"
    assert checkpoints.exactly_once([checkpoints.Digest(*d) for d in delivered[1]], train_size)
    final = checkpoint.load(ckpt, torch.device("cpu"))
    assert final["epoch"] == 2 and final["world_size"] == 3
    # Each of the three ranks draws its own crops and flips.
    from cassandra_dali.checkpoints._dali_format import parse

    random_states = [tuple(s for name, s in parse(p).operators if s.startswith("Philox"))
                     for p in final["data"]["pipelines"]]
    assert all(random_states) and len(set(random_states)) == 3
    shown = _run([sys.executable, "-m", "cassandra_dali.cli", "checkpoint", "show",
                  str(ckpt / checkpoint.LATEST)])
    assert "rank 2: reader Reader:" in shown and "taken by shard 2 of 3" in shown, shown


@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_and_stops(data: Data, tmp_path: Path) -> None:
    ckpt, log_json = tmp_path / "ckpt", tmp_path / "term.jsonl"
    command = [sys.executable, str(CASSANDRA_SCRIPT), *data.source_args("cassandra"),
               *SMALL_RUN, "--epochs", "3", "--print-freq", "1", "--checkpoint-dir", str(ckpt),
               "--log-json", str(log_json)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "Epoch: [0][2/" in line:  # two steps done
                process.send_signal(signal.SIGTERM)
                break
        rest = process.communicate(timeout=RUN_TIMEOUT_S)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest[-3000:]
    (stopped,) = _events(log_json, "stopped")
    assert stopped["reason"] == "SIGTERM" and stopped["epoch"] == 0 and 2 <= stopped["step"] < 10
    saved = checkpoint.load(ckpt, torch.device("cpu"))
    assert (saved["epoch"], saved["step"]) == (0, stopped["step"])
