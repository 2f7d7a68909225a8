"""The rest of the Imagenette workflow against the real server: the UUIDs listed into a rows
file, every file read back byte-exact through DALI, and loop_read.py with both readers, on one
rank and sharded over two."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra_dali.client import Connection, token_scan
from cassandra_dali.dataset import rows_files
from cassandra_dali.sharding import shard_layout
from cassandra_dali.sources import CassandraSource
from nvidia.dali import pipeline_def
from workflow_helpers import (
    EXAMPLES,
    N_TRAIN,
    conn_flags,
    expected_train,
    run_script,
    script_env,
    sha,
)

# --------------------------------------------------------------------------------------------
# UUIDs and reading back
# --------------------------------------------------------------------------------------------


def test_rows_file_round_trip(root: Path, rows_file: Path, tmp_path: Path) -> None:
    ids = rows_files.read_rows_file(rows_file)
    assert ids == sorted(str(u) for u in expected_train(root))  # sorted, complete, no comments
    assert rows_file.read_text().startswith("# ")
    copy = tmp_path / "copy.rows"
    assert rows_files.write_rows_file(copy, reversed(ids)) == len(ids)
    assert rows_files.read_rows_file(copy) == ids


def test_token_ranges_cover_the_ring() -> None:
    for splits in (1, 3, 64):
        ranges = token_scan.token_ranges(splits)
        assert len(ranges) == splits
        assert ranges[0][0] == token_scan.MIN_TOKEN and ranges[-1][1] == token_scan.MAX_TOKEN
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(lo < hi for lo, hi in ranges)


def test_scan_with_few_and_many_ranges(ingested: str, cql_session: Any) -> None:
    one = token_scan.scan_ids(cql_session, f"{ingested}.metadata_train", splits=1)
    many = token_scan.scan_ids(cql_session, f"{ingested}.metadata_train", splits=1000, fetch_size=3)
    assert one == many and len(one) == N_TRAIN


def test_every_file_reads_back_byte_exact(
    root: Path, rows_file: Path, ingested: str, conn: Connection
) -> None:
    expected = expected_train(root)
    batch_size = 16

    @pipeline_def(batch_size=batch_size, num_threads=1, device_id=None)
    def pipe() -> Any:
        source = CassandraSource(f"{ingested}.data_train", rows_file=rows_file, connection=conn)
        return source.read(shuffle=False)

    p = pipe()
    p.build()
    layout = shard_layout(N_TRAIN, shard_id=0, num_shards=1, batch_size=batch_size)
    seen: dict[str, int] = {}
    for _ in range(layout["batches_per_epoch"]):
        data, labels = p.run()
        for i in range(len(data)):
            seen[sha(np.array(data[i]))] = int(np.array(labels[i])[0])
    assert seen == {digest: label for label, digest, _ in expected.values()}


# --------------------------------------------------------------------------------------------
# loop_read.py
# --------------------------------------------------------------------------------------------


def test_loop_read_both_readers(
    root: Path, rows_file: Path, ingested: str, conn: Connection, tmp_path: Path
) -> None:
    out = run_script(
        "loop_read.py",
        "--data-table",
        f"{ingested}.data_train",
        "--rows-fn",
        str(rows_file),
        "--bs",
        "8",
        "--epochs",
        "2",
        "--json",
        str(tmp_path / "c.json"),
        "--metrics-file",
        str(tmp_path / "reader.prom"),
        *conn_flags(conn),
    ).stdout
    assert "epoch 0:" in out and "epoch 1:" in out and "images/s" in out and "MB/s" in out
    assert "epoch 0 left out as warm-up" in out
    # The reader's counters: printed, and written for Prometheus.
    assert f"Reader ({ingested}.data_train): " in out and "read latency p50" in out
    metrics = (tmp_path / "reader.prom").read_text()
    assert "# TYPE cassandra_dali_rows_total counter" in metrics
    assert f'cassandra_dali_errors_total{{rank="0",reader="Reader",table="{ingested}.data_train"}} 0' in metrics
    out = run_script(
        "loop_read.py",
        "--reader=file",
        f"--file-root={root / 'train'}",
        "--bs",
        "8",
        "--epochs",
        "1",
    ).stdout
    assert "file:" in out and "images/s" in out
    import json

    figures = json.loads((tmp_path / "c.json").read_text())
    assert figures["batches_per_epoch"] == 5 and figures["images_per_s"] > 0
    assert figures["reader_stats"]["rows"] >= 2 * 5 * 8 and figures["reader_stats"]["errors"] == 0


def test_loop_read_use_gpu_without_gpu(root: Path) -> None:
    from nvidia.dali.backend import GetCUDADeviceCount

    if GetCUDADeviceCount() > 0:
        pytest.skip("this machine has a GPU")
    result = run_script(
        "loop_read.py", "--reader=file", f"--file-root={root / 'train'}", "--use-gpu", check=False
    )
    assert result.returncode == 1
    assert "--use-gpu needs an NVIDIA GPU" in result.stderr and "Traceback" not in result.stderr


def test_loop_read_with_the_server_down(rows_file: Path) -> None:
    result = run_script(
        "loop_read.py", "--data-table=ks.t", f"--rows-fn={rows_file}", "--port=1", check=False
    )
    assert result.returncode == 1, result.stderr
    assert "loop_read.py: error: fn.crs4.cassandra: cannot connect to Cassandra at 127.0.0.1:1" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "pipeline" not in result.stderr


def _two_ranks(args: list[str], record: Path) -> None:
    """loop_read.py with 2 ranks: torchrun when installed, else the variables torchrun sets."""
    torchrun = shutil.which("torchrun", path=script_env()["PATH"])
    if torchrun is not None:
        result = subprocess.run(
            [
                torchrun,
                "--standalone",
                "--nproc_per_node=2",
                "loop_read.py",
                *args,
                "--record",
                str(record),
            ],
            cwd=EXAMPLES,
            env=script_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return
    processes = []
    for rank in range(2):
        env = dict(
            script_env(),
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT="29500",
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "loop_read.py", *args, "--record", str(record)],
                cwd=EXAMPLES,
                env=env,
            )
        )
    assert [p.wait(timeout=180) for p in processes] == [0, 0]


@pytest.mark.parametrize("reader", ["cassandra", "file"])
def test_two_ranks_see_disjoint_samples(
    reader: str,
    root: Path,
    rows_file: Path,
    ingested: str,
    conn: Connection,
    tmp_path: Path,
) -> None:
    if reader == "cassandra":
        args = [
            "--data-table",
            f"{ingested}.data_train",
            "--rows-fn",
            str(rows_file),
            *conn_flags(conn),
        ]
    else:
        args = ["--reader=file", f"--file-root={root / 'train'}"]
    _two_ranks([*args, "--bs", "4", "--epochs", "1"], tmp_path / "seen")
    per_rank = [
        {line.split()[0] for line in (tmp_path / f"seen.{rank}").read_text().splitlines()}
        for rank in range(2)
    ]
    everything = {digest for _, digest, _ in expected_train(root).values()}
    assert per_rank[0].isdisjoint(per_rank[1])
    assert per_rank[0] | per_rank[1] == everything
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1


def test_rounds_measure_all_images_over_all_the_time() -> None:
    """The shared measuring of bench/compare_readers.py and the demo: a new loop per round, the
    readers in turn, warm-up rounds and each loop's epoch 0 left out; the figure is all images
    over all the time, the spread half a 95 % interval of the per-round rates."""
    from cassandra_dali.benchmark import rounds
    from cassandra_dali.benchmark.readloop import EpochStat

    made: list[str] = []
    order: list[tuple[str, int]] = []

    class Steady:
        """Epoch e of round r takes (r + 1) seconds for 100 images of 1 MB."""

        def __init__(self, name: str) -> None:
            self.name, self.round = name, sum(1 for m in made if m == name)
            made.append(name)

        def run_epoch(self, epoch: int) -> EpochStat:
            order.append((self.name, epoch))
            return EpochStat(epoch, 100, 10**6, float(self.round + 1))

        def close(self) -> None:
            pass

    measured = rounds.run_rounds({"a": lambda: Steady("a"), "b": lambda: Steady("b")},
                                 rounds=3, warmup_rounds=1, epochs=3)
    assert made == ["a", "b"] * 4  # a new loop per round, interleaved
    assert order[:6] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert [len(r) for r in measured["a"]] == [2, 2, 2]  # epochs 1 and 2 of rounds 1..3
    figures = rounds.of_rounds(measured["a"])
    assert figures.images == 600 and figures.seconds == 2 * (2 + 3 + 4)
    assert figures.images_per_s == pytest.approx(600 / 18)
    assert figures.round_images_per_s == pytest.approx((50, 100 / 3, 25))
    rates = [50, 100 / 3, 25]
    mean = sum(rates) / 3
    std = (sum((r - mean) ** 2 for r in rates) / 2) ** 0.5
    assert figures.spread == pytest.approx(4.30 * std / 3 ** 0.5)
    assert "± " in figures.format() and "3 rounds" in figures.format()
    with pytest.raises(ValueError):
        rounds.run_rounds({"a": lambda: Steady("a")}, rounds=1, warmup_rounds=0, epochs=1)
