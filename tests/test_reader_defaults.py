"""The tools pass fn.crs4.cassandra only what the user set (issue 19): io_threads,
prefetch_buffers and shuffle_seed left unset are not passed, so the operator's own defaults
apply, and where a tool needs a default itself it reads it from the engine's one declaration
(``reader_default``). Fast: nothing is read."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from cassandra_dali import _native
from cassandra_dali.benchmark import readloop
from cassandra_dali.cli import read
from cassandra_dali.sharding import Ranks
from cassandra_dali.sources import CassandraSource, reader_default

UNSET = {"io_threads", "prefetch_buffers", "shuffle_seed"}
CASSANDRA_SCRIPT = (Path(__file__).resolve().parents[1] / "examples" / "imagenette"
                    / "distrib_train_from_cassandra.py")


def test_none_is_not_passed() -> None:
    source = CassandraSource("ks.t", uuids=["u"], options={"io_threads": None, "label_type": "int"})
    arguments = source.arguments()
    assert not UNSET & set(arguments) and arguments["label_type"] == "int"
    chosen = CassandraSource("ks.t", uuids=["u"], options={"io_threads": 3}).arguments(seed=7)
    assert (chosen["io_threads"], chosen["shuffle_seed"]) == (3, 7)


def _read_config(*flags: str) -> readloop.LoopConfig:
    parser = argparse.ArgumentParser()
    read.add_arguments(parser)
    args = parser.parse_args(["--data-table", "ks.t", "--rows-fn", "x.rows", *flags])
    return read.config_from_args(args, Ranks())


def test_read_loop_passes_only_what_is_set() -> None:
    config = _read_config()
    assert not UNSET & set(readloop.source(config).arguments(seed=config.seed))
    config = _read_config("--io-threads", "4", "--prefetch-buffers", "8", "--seed", "9")
    arguments = readloop.source(config).arguments(seed=config.seed)
    assert {name: arguments[name] for name in UNSET} == {
        "io_threads": 4, "prefetch_buffers": 8, "shuffle_seed": 9}


def test_training_script_passes_only_what_is_set(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("train_script", CASSANDRA_SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sources: dict[str, Any] = {}
    monkeypatch.setattr(script.training, "run",
                        lambda opts, **given: sources.update(given) or 0)
    rows = tmp_path / "x.rows"
    rows.write_text("")
    script.main(["--train-rows-fn", str(rows), "--val-rows-fn", str(rows)])
    for source in sources.values():
        assert not UNSET & set(source.arguments())
    script.main(["--train-rows-fn", str(rows), "--val-rows-fn", str(rows), "--io-threads", "3"])
    assert sources["train_source"].arguments()["io_threads"] == 3


def test_reader_default_reads_the_declaration() -> None:
    declared = {argument["name"]: argument["default"] for argument in _native.reader_arguments()}
    assert reader_default("io_threads") == declared["io_threads"]
    with pytest.raises(KeyError, match="no_such_argument"):
        reader_default("no_such_argument")
    # The self-feed arguments are declared too: their defaults are the tools' (the file reader's
    # seed, the tests' expected orders).
    assert isinstance(reader_default("shuffle_seed"), int)
    assert {"prefetch_buffers", "loop_forever", "shard_id", "num_shards"} <= set(declared)
