"""The C++ unit that writes the reader's outputs, against every state DALI's executor gives a
CPU output (host-read; pinned for a mixed consumer; pinned for a GPU consumer), with no GPU.

``make`` builds it into build/ (``-Ccmake.define.CASSANDRA_DALI_TESTS=ON``); it swaps DALI's
pinned memory resource for a recording host one, so "pinned" outputs allocate here too.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parent.parent / "build"
BINARY = BUILD / "output_writer_test"


def test_output_writer_handles_every_output_state() -> None:
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.skip("no C++ build tree here (the package was built elsewhere): run `make test`")
    assert BINARY.exists(), (
        f"{BINARY} is missing: the build was configured without CASSANDRA_DALI_TESTS=ON "
        "(`make install` sets it)"
    )
    run = subprocess.run([str(BINARY)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"^(\d+) passed, (\d+) failed$", run.stdout, re.MULTILINE)
    assert summary, run.stdout
    passed, failed = int(summary[1]), int(summary[2])
    assert failed == 0 and passed >= 15, run.stdout
