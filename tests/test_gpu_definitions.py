"""Every GPU pipeline the project builds, defined with ``device_id=0`` on a machine without a
GPU: DALI checks devices (e.g. what a mixed operator may take as input) while the graph is
defined, so errors of that kind fail here instead of on the first GPU that runs them. Nothing is
built: building needs a GPU (test_gpu.py runs them there)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from cassandra_dali.benchmark import readloop
from cassandra_dali.client import Connection
from gpu_pipelines import CONSUMERS, LABEL_TYPES, OPERATORS, reader_pipeline

UUIDS = ["6f1e8b52-5b0a-4c4e-9a55-0d4f7a1b2c3d", "0b8d2c44-1e7f-4a2b-8c3d-9e0f1a2b3c4d"]


BENCH = Path(__file__).resolve().parents[1] / "bench"


def _outputs(pipe: Any) -> list[Any]:
    # Python's half of build(): every operator spec made and checked, no backend (no GPU).
    # Private DALI API (2.4): if a new DALI drops it, say so rather than fail obscurely.
    assert hasattr(pipe, "_build_graph") and hasattr(pipe, "_graph_outputs"), (
        "this DALI has no Pipeline._build_graph/_graph_outputs: update _outputs() to its API"
    )
    pipe._build_graph()
    return list(pipe._graph_outputs)


@pytest.mark.parametrize("label_type", LABEL_TYPES)
@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("operator", OPERATORS)
def test_reader_pipelines_define_on_a_gpu(operator: str, consumer: str, label_type: str) -> None:
    pipe = reader_pipeline(
        operator, consumer, dict(table="ks.data", source_uuids=UUIDS, label_type=label_type),
        batch_size=2, device_id=0,
    )
    outputs = _outputs(pipe)
    gpu_side = consumer in ("gpu", "mixed_decode", "cpu_decode_gpu")
    assert [o.device for o in outputs[:2]] == (["gpu", "gpu"] if gpu_side else ["cpu", "cpu"])


@pytest.mark.parametrize("reader", readloop.READERS)
@pytest.mark.parametrize("decode", [False, True])
def test_loop_read_gpu_pipelines_define(reader: str, decode: bool, tmp_path: Path) -> None:
    """loop_read.py --use-gpu [--decode]: --decode once failed here ("input 0 for mixed operator
    fn.decoders.image is stored on incompatible device gpu")."""
    config = readloop.LoopConfig(
        reader=reader, data_table="ks.data", rows_fn=str(tmp_path / "x.rows"),
        file_root=str(tmp_path), use_gpu=True, decode=decode,
    )
    outputs = _outputs(readloop.build_pipeline(config, device_id=0))
    if decode:
        assert [o.device for o in outputs] == ["cpu", "cpu", "gpu"]
    else:
        assert [o.device for o in outputs] == ["gpu", "cpu"]


@pytest.mark.parametrize("source_kind", ["file", "cassandra"])
@pytest.mark.parametrize("dali_cpu", [False, True])
@pytest.mark.parametrize("split", ["train", "val"])
def test_training_pipelines_define_on_a_gpu(source_kind: str, dali_cpu: bool, split: str,
                                            tmp_path: Path) -> None:
    """The trainer's pipelines as distrib_train_from_{file,cassandra}.py build them on a GPU,
    with and without --dali_cpu: images and labels reach PyTorch as CUDA tensors."""
    pytest.importorskip("torch")
    from cassandra_dali.training import data

    source: data.Source = (
        data.FileSource(tmp_path) if source_kind == "file"
        else data.CassandraSource("ks.data", tmp_path / "x.rows")
    )
    opts = data.PipelineOptions(batch_size=2, num_threads=1, crop=32, val_size=40,
                                dali_cpu=dali_cpu, device_id=0)
    common: dict[str, Any] = dict(batch_size=2, num_threads=1, device_id=0, seed=1)
    if split == "train":
        pipe = data._training_pipeline(source, 0, 1, 7, opts, enable_checkpointing=True, **common)
    else:
        pipe = data._validation_pipeline(source, 0, 1, opts, **common)
    assert [o.device for o in _outputs(pipe)] == ["gpu", "gpu"]


@pytest.mark.parametrize("reader", ["cassandra", "file"])
@pytest.mark.parametrize("mode", ["decode", "raw"])
def test_gpu_bench_pipelines_define(reader: str, mode: str, tmp_path: Path) -> None:
    """bench/gpu_pipeline.py's pipelines (make bench-gpu)."""
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("gpu_pipeline")
    finally:
        sys.path.remove(str(BENCH))
    args = argparse.Namespace(bs=4, threads=2, prefetch=2, io_threads=2, root=tmp_path)
    pipe = bench.define(reader, mode, args, Connection(), tmp_path / "x.rows")
    assert [o.device for o in _outputs(pipe)] == ["gpu", "gpu"]
