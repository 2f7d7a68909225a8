"""The reader's arguments are declared once (csrc/engine/reader_arguments.cc): the DALI schemas,
the Python Reader, its stub and docs/reader.md's argument table all follow that one list."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from nvidia.dali import backend

import cassandra_dali
from cassandra_dali import _native

DECLARED = _native.reader_arguments()
STUB = Path(cassandra_dali.__file__).with_name("_native.pyi")
READER_DOC = Path(__file__).parents[1] / "docs" / "reader.md"
# Which operators take an argument of each scope.
SCOPES = {
    "crs4__cassandra": {"reader", "operators", "self_feed"},
    "crs4__cassandra_interactive": {"reader", "operators"},
}


def test_every_argument_has_a_known_scope() -> None:
    assert {a["scope"] for a in DECLARED} == SCOPES["crs4__cassandra"]
    for arg in DECLARED:
        assert arg["python"] == (arg["scope"] == "reader"), arg["name"]


@pytest.mark.parametrize("operator", sorted(SCOPES))
def test_the_dali_schema_is_the_declaration(operator: str) -> None:
    schema = backend.GetSchema(operator)
    for arg in DECLARED:
        name = arg["name"]
        if arg["scope"] not in SCOPES[operator]:
            assert not schema.HasArgument(name), f"{operator} takes {name}"
            continue
        assert schema.HasArgument(name), f"{operator} lacks {name}"
        if arg["required"]:
            assert not schema.IsArgumentOptional(name)
        else:
            assert ast.literal_eval(schema.GetArgumentDefaultValueString(name)) == arg["default"]
            assert arg["doc"] in schema.GetArgumentDox(name)


def _stub_init() -> list[tuple[str, Any]]:
    tree = ast.parse(STUB.read_text())
    (reader,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Reader"]
    (init,) = [n for n in reader.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    params = init.args.args[1:]  # after self
    defaults = [None] * (len(params) - len(init.args.defaults)) + list(init.args.defaults)
    out = []
    for param, default in zip(params, defaults):
        value = ... if isinstance(default, ast.Constant) and default.value is ... else (
            None if default is None else ast.literal_eval(default))
        out.append((param.arg, value))
    return out


def test_the_stub_is_the_declaration() -> None:
    expected = [(a["name"], None if a["required"] else a["default"]) for a in DECLARED
                if a["python"]]
    stub = _stub_init()
    assert [name for name, _ in stub] == [name for name, _ in expected]
    for (name, stub_default), (_, default) in zip(stub, expected):
        if stub_default is not ...:  # `...` stands for a list default
            assert stub_default == default, name


def test_the_python_reader_checks_names_and_types() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'cassandra_pot'"):
        cassandra_dali.Reader("ks.t", cassandra_pot=9042)
    with pytest.raises(TypeError, match="cassandra_port must be int, not str"):
        cassandra_dali.Reader("ks.t", cassandra_port="9042")
    with pytest.raises(TypeError, match="unexpected keyword argument 'comm_threads'"):
        cassandra_dali.Reader("ks.t", comm_threads=2)  # a DALI-only compatibility argument


def _doc_value(text: str) -> Any:
    """A default as the docs' table writes it."""
    text = text.strip().strip("`")
    if text in ("True", "False"):
        return text == "True"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if m := re.fullmatch(r"(\d+) MiB", text):
        return int(m.group(1)) << 20
    if text.startswith("["):
        return json.loads(text)
    return "" if text == '""' else text


def _doc_table() -> list[tuple[list[str], list[str]]]:
    """(argument names, default cells) of each row of the reader's argument table."""
    rows = []
    for line in READER_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([a-z_0-9]+)`", cells[0])
        rows.append((names, [] if not cells[1] else cells[1].split(", ")))
    return rows


def test_the_docs_table_is_the_declaration() -> None:
    table = _doc_table()
    documented = [name for names, _ in table for name in names]
    assert sorted(documented) == sorted(a["name"] for a in DECLARED)
    defaults = {a["name"]: a["default"] for a in DECLARED}
    checked = 0
    for names, cells in table:
        if len(cells) != len(names) or names == ["table"]:
            continue  # a row that describes its defaults in words
        for name, cell in zip(names, cells):
            if cell.strip():
                assert _doc_value(cell) == defaults[name], name
                checked += 1
    assert checked >= 25  # most defaults are written as values
