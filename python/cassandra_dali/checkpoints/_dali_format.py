"""DALI's serialized pipeline checkpoint, read and written without DALI's protobuf classes
(the wheel ships none): a message of repeated operator checkpoints (field 1: name = 1,
state = 2) and an external context (field 2: pipeline data = 1, iterator data = 2, both JSON
text). Fields this module does not know are kept as they were."""

from __future__ import annotations

import dataclasses

from ..errors import UserError

_VARINT, _BYTES = 0, 2


class FormatError(UserError, ValueError):
    """Bytes that are not a checkpoint of a pipeline reading with fn.crs4.cassandra."""


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise FormatError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a message, in order."""
    out: list[tuple[int, int, bytes | int]] = []
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, at = _read_varint(data, at)
            out.append((number, wire, value))
        elif wire == _BYTES:
            length, at = _read_varint(data, at)
            if at + length > len(data):
                raise FormatError("truncated field")
            out.append((number, wire, data[at:at + length]))
            at += length
        else:
            raise FormatError(f"wire type {wire} is not used by DALI checkpoints")
    return out


def _encode(fields: list[tuple[int, int, bytes | int]]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _varint(number << 3 | wire)
        if wire == _VARINT:
            assert isinstance(value, int)
            out += _varint(value)
        else:
            assert isinstance(value, bytes)
            out += _varint(len(value)) + value
    return bytes(out)


@dataclasses.dataclass
class PipelineCheckpoint:
    """The operators' states by name (in order), the external context, and unknown fields."""

    operators: list[tuple[str, str]]
    pipeline_data: str = ""
    iterator_data: str = ""
    other: list[tuple[int, int, bytes | int]] = dataclasses.field(default_factory=list)

    def operator(self, name: str) -> str:
        for op, state in self.operators:
            if op == name:
                return state
        raise KeyError(name)

    def with_operator(self, name: str, state: str) -> PipelineCheckpoint:
        return dataclasses.replace(
            self, operators=[(op, state if op == name else s) for op, s in self.operators])


def parse(data: bytes) -> PipelineCheckpoint:
    try:
        checkpoint = PipelineCheckpoint(operators=[])
        for number, wire, value in _fields(data):
            if number == 1 and wire == _BYTES:
                assert isinstance(value, bytes)
                op = {n: v for n, w, v in _fields(value) if w == _BYTES}
                checkpoint.operators.append(
                    (bytes(op.get(1, b"")).decode(), bytes(op.get(2, b"")).decode()))
            elif number == 2 and wire == _BYTES:
                assert isinstance(value, bytes)
                ctx = {n: v for n, w, v in _fields(value) if w == _BYTES}
                checkpoint.pipeline_data = bytes(ctx.get(1, b"")).decode()
                checkpoint.iterator_data = bytes(ctx.get(2, b"")).decode()
            else:
                checkpoint.other.append((number, wire, value))
    except (FormatError, UnicodeDecodeError) as error:
        raise FormatError(f"not a DALI pipeline checkpoint: {error}") from None
    if not checkpoint.operators:
        raise FormatError("not a DALI pipeline checkpoint: it names no operator")
    return checkpoint


def serialize(checkpoint: PipelineCheckpoint) -> bytes:
    fields: list[tuple[int, int, bytes | int]] = [
        (1, _BYTES, _encode([(1, _BYTES, name.encode()), (2, _BYTES, state.encode())]))
        for name, state in checkpoint.operators
    ]
    fields.append((2, _BYTES, _encode([(1, _BYTES, checkpoint.pipeline_data.encode()),
                                       (2, _BYTES, checkpoint.iterator_data.encode())])))
    return _encode(fields + checkpoint.other)
