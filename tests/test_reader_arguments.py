"""The reader's shared arguments are declared once (csrc/engine/reader_arguments.cc): the DALI
schema, the Python Reader and its stub all follow that one list."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from nvidia.dali import backend

import cassandra_dali
from cassandra_dali import _native

DECLARED = _native.reader_arguments()
STUB = Path(cassandra_dali.__file__).with_name("_native.pyi")


@pytest.mark.parametrize("operator", ["crs4__cassandra", "crs4__cassandra_interactive"])
def test_the_dali_schema_is_the_declaration(operator: str) -> None:
    schema = backend.GetSchema(operator)
    for arg in DECLARED:
        name = arg["name"]
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
