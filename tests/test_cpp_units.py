"""The C++ test binaries, rebuilt in build/ (so they never run stale code) and run:

- ``output_writer_test``: the unit that writes the reader's outputs, against every state DALI's
  executor gives a CPU output (host-read; pinned for a mixed consumer; pinned for a GPU
  consumer), with no GPU. It swaps DALI's pinned memory resource for a recording host one, so
  "pinned" outputs allocate here too.
- ``engine_test``: the engine against a fake driver (csrc/testing/fake_driver.h): reads that
  never end, that fail inside ``cass_future_set_callback``, that land late into batches given up
  on, and many landing at once from other threads; identifiers, argument checks, failure kinds.
  ``make tsan`` runs it under ThreadSanitizer, ``make sanitize`` under ASan and UBSan.

``make`` configures build/ with ``-Ccmake.define.CASSANDRA_DALI_TESTS=ON``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parent.parent / "build"


@pytest.mark.parametrize(("binary", "cases"), [("output_writer_test", 11), ("engine_test", 20)])
def test_cpp_unit_binary(binary: str, cases: int) -> None:
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.skip("no C++ build tree here (the package was built elsewhere): run `make test`")
    path = BUILD / binary
    rebuild = subprocess.run(
        ["cmake", "--build", str(BUILD), "--target", binary],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert rebuild.returncode == 0 and path.exists(), (
        f"cannot build {path} (was build/ configured with CASSANDRA_DALI_TESTS=ON, as "
        f"`make install` does?):\n{rebuild.stdout[-3000:]}{rebuild.stderr[-3000:]}"
    )
    run = subprocess.run([str(path)], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"^(\d+) passed, (\d+) failed$", run.stdout, re.MULTILINE)
    assert summary, run.stdout
    passed, failed = int(summary[1]), int(summary[2])
    assert failed == 0 and passed >= cases, run.stdout


def test_cpp_sources_fit_100_columns() -> None:
    # The style .clang-format describes (Google, 100 columns).
    root = BUILD.parent
    long_lines = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted((root / "csrc").rglob("*"))
        if path.suffix in (".h", ".cc")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > 100
    ]
    assert not long_lines, long_lines
