"""Fuzz the parsers and argument checks with atheris (``make fuzz``): each check of
``checks.py`` runs in a process of its own for ``--seconds``, starting from and adding to its
corpus in ``tests/fuzz/corpus/<check>/`` (kept in the repository: ``make test`` replays it).

    python tests/fuzz/fuzz_parsers.py [--seconds 60] [--only CHECK]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _child(check: str, fuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        from checks import CHECKS  # noqa: PLC0415  (instrumented: atheris sees its branches)
    atheris.Setup([sys.argv[0], *fuzzer_args], CHECKS[check])
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--only", default="")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        _child(args.child, rest)
        return 0
    from checks import CHECKS

    failed = []
    for check in CHECKS:
        if args.only and check != args.only:
            continue
        corpus = HERE / "corpus" / check
        corpus.mkdir(parents=True, exist_ok=True)
        print(f"fuzzing {check} for {args.seconds} s (corpus {corpus})", flush=True)
        run = subprocess.run(
            [sys.executable, __file__, "--child", check, f"-max_total_time={args.seconds}",
             "-max_len=4096", "-print_final_stats=1", f"-artifact_prefix={HERE}/crash-{check}-",
             str(corpus)],
            check=False,
        )
        if run.returncode != 0:
            failed.append(check)
    if failed:
        print(f"failures in: {', '.join(failed)} (inputs saved as tests/fuzz/crash-*)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
