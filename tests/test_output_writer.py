"""The C++ unit that writes the reader's outputs, against every state DALI's executor gives a
CPU output (host-read; pinned for a mixed consumer; pinned for a GPU consumer), with no GPU.

``make`` configures build/ with ``-Ccmake.define.CASSANDRA_DALI_TESTS=ON``; the test rebuilds the
binary there (so it never runs stale code) and runs it. It swaps DALI's pinned memory resource
for a recording host one, so "pinned" outputs allocate here too.
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
    rebuild = subprocess.run(
        ["cmake", "--build", str(BUILD), "--target", "output_writer_test"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert rebuild.returncode == 0 and BINARY.exists(), (
        f"cannot build {BINARY} (was build/ configured with CASSANDRA_DALI_TESTS=ON, as "
        f"`make install` does?):\n{rebuild.stdout[-3000:]}{rebuild.stderr[-3000:]}"
    )
    run = subprocess.run([str(BINARY)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"^(\d+) passed, (\d+) failed$", run.stdout, re.MULTILINE)
    assert summary, run.stdout
    passed, failed = int(summary[1]), int(summary[2])
    assert failed == 0 and passed >= 12, run.stdout
