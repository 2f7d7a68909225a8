"""One base for the errors a user can fix (issue 19): every tool error of the package is a
``UserError``, and the command line's guard prints any ``UserError``, one defined after it
included, as one line with exit status 1, while other exceptions keep their traceback."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import cassandra_dali
import pytest
from cassandra_dali import UserError
from cassandra_dali.cli._common import EXIT_ERROR, run_guarded


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(cassandra_dali.__path__, "cassandra_dali."):
        last = info.name.rsplit(".", 1)[-1]
        if last == "__main__" or last.startswith("lib"):  # runs the CLI; the C++ libraries
            continue
        yield importlib.import_module(info.name)


def _errors_defined_in(module: ModuleType) -> list[type[BaseException]]:
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__]


def test_every_tool_error_is_a_user_error() -> None:
    found = {error.__name__: error for module in _modules()
             # The engine's exceptions (ReadError, SchemaError...) are made by the C++ module.
             if module.__name__ != "cassandra_dali._native"
             for error in _errors_defined_in(module)}
    # The walk finds the errors this test was written for, and any added since.
    assert {"ServerError", "IngestError", "SplitError", "ConnectionFailed", "LoopError",
            "CqlSyntaxError", "GpuError"} <= set(found)
    assert [name for name, error in found.items() if not issubclass(error, UserError)] == []


class _NewToolError(UserError):
    """Stands for an error a tool adds later, registered nowhere."""


def _fail(error: BaseException) -> int:
    raise error


def test_guard_prints_a_new_user_error_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = run_guarded(lambda _: _fail(_NewToolError("the rows file is empty")),
                         argparse.Namespace(), "tool")
    assert status == EXIT_ERROR
    assert capsys.readouterr().err == "tool: error: the rows file is empty\n"


def test_guard_lets_a_bug_through() -> None:
    with pytest.raises(KeyError):
        run_guarded(lambda _: _fail(KeyError("bug")), argparse.Namespace(), "tool")
