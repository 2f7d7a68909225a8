"""The reader's GPU pipelines, one per way its outputs are consumed: defined (not built) on CPU
machines by test_gpu_definitions.py, built and run byte-exact on a GPU by test_gpu.py.

How DALI's executor lays out the reader's CPU outputs depends on who consumes them (pageable
for CPU operators and Python, pinned for mixed and GPU operators), so each consumer gets its own
pipeline: a mix would hide the state a lone consumer produces.
"""

from __future__ import annotations

from typing import Any

from cassandra_dali.sources import cassandra_node
from nvidia.dali import fn, pipeline_def, types

# Consumer -> what the pipeline returns.
CONSUMERS = (
    "python",          # raw bytes and labels returned to Python on the CPU
    "cpu_operator",    # a CPU operator (fn.copy) reads them
    "gpu",             # .gpu(): copied to the device
    "mixed_decode",    # nvJPEG ("mixed") decoder -> resize -> crop, labels .gpu()
    "cpu_decode_gpu",  # CPU decoder -> .gpu() (what --dali_cpu builds)
)
LABEL_TYPES = ("int", "blob", "none")
OPERATORS = ("cassandra", "cassandra_interactive")
CROP = 64


def consume(data: Any, labels: Any, consumer: str) -> tuple[Any, ...]:
    """The pipeline's outputs for ``consumer``; the first is always per-sample bytes or an
    image, the second the labels."""
    if consumer == "python":
        return data, labels
    if consumer == "cpu_operator":
        return fn.copy(data), fn.copy(labels)
    if consumer == "gpu":
        return data.gpu(), labels.gpu()
    if consumer == "mixed_decode":
        images = fn.decoders.image(data, device="mixed", output_type=types.DALIImageType.RGB)
        resized: Any = fn.resize(images, resize_shorter=CROP)
        return fn.crop(resized, crop=(CROP, CROP)), labels.gpu(), images
    if consumer == "cpu_decode_gpu":
        decoded = fn.decoders.image(data, device="cpu", output_type=types.DALIImageType.RGB)
        return decoded.gpu(), labels.gpu()
    raise ValueError(consumer)


def reader_pipeline(operator: str, consumer: str, reader_args: dict[str, Any], *,
                    batch_size: int, device_id: int | None = 0, **pipe_args: Any) -> Any:
    """A pipeline around ``fn.crs4.<operator>``; the interactive one is fed UUIDs through an
    external source named "UUID" (uint8 [16] per sample), one batch per run()."""
    if operator != "cassandra":
        pipe_args.setdefault("prefetch_queue_depth", 1)

    @pipeline_def(batch_size=batch_size, num_threads=2, device_id=device_id,  # type: ignore[arg-type]  # None: CPU only
                  **pipe_args)
    def pipe() -> tuple[Any, ...]:
        if operator == "cassandra":
            data, labels = cassandra_node(reader_args)
        else:
            args = {k: v for k, v in reader_args.items() if k not in _SELF_FEED_ONLY}
            uuids = fn.external_source(name="UUID", dtype=types.DALIDataType.UINT8, ndim=1)
            data, labels = fn.crs4.cassandra_interactive(uuids, **args)  # type: ignore[attr-defined]
        return consume(data, labels, consumer)

    return pipe()


_SELF_FEED_ONLY = {
    "source_uuids", "source_uuids_file", "shard_id", "num_shards", "shuffle_every_epoch",
    "shuffle_seed", "loop_forever", "prefetch_buffers",
}
