"""The fuzz corpus (``tests/fuzz/corpus/``, grown by ``make fuzz``) replayed through the parser
checks: every input the fuzzer kept, the ones that once failed included, still behaves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))
from checks import CHECKS  # noqa: E402

CASES = sorted((check, path) for check in CHECKS for path in (FUZZ / "corpus" / check).iterdir())


def test_every_check_has_a_corpus() -> None:
    assert {check for check, _ in CASES} == set(CHECKS)


@pytest.mark.parametrize(("check", "path"), CASES, ids=[f"{c}/{p.name}" for c, p in CASES])
def test_corpus_input(check: str, path: Path) -> None:
    CHECKS[check](path.read_bytes())


def test_messages_survive_nul_and_invalid_utf8() -> None:
    """What the fuzzer found: a NUL cut error messages short, invalid UTF-8 made them raise
    UnicodeDecodeError instead; now the culprit is shown escaped."""
    from cassandra_dali import _native

    with pytest.raises(ValueError, match=r"'ab\\x00cd' is not a valid CQL identifier"):
        _native.canonical_identifier("ab\0cd", "table")
    with pytest.raises(ValueError, match=r"'\\x00\\x01' is not a UUID"):
        _native.parse_uuid("\0\x01")
