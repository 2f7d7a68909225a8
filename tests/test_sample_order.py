"""The pure parts of the engine, through the Python module: shard and padding arithmetic,
the per-epoch permutation, UUID parsing and identifier validation."""

from __future__ import annotations

import uuid

import pytest

from cassandra_dali import ArgumentError, _native


@pytest.mark.parametrize("size", [1, 7, 100, 203, 1000])
@pytest.mark.parametrize("shards", [1, 2, 3, 8])
@pytest.mark.parametrize("batch", [1, 16, 64])
def test_shards_partition_and_pad_to_whole_equal_batches(size: int, shards: int, batch: int) -> None:
    if shards > size:
        with pytest.raises(ArgumentError, match="larger than the"):
            _native.shard_layout(size, shards, 0, batch)
        return
    layouts = [_native.shard_layout(size, shards, i, batch) for i in range(shards)]
    # DALI's shard boundaries: [N*i/S, N*(i+1)/S)
    assert [l["begin"] for l in layouts] == [size * i // shards for i in range(shards)]
    assert layouts[-1]["end"] == size
    assert len({l["batches_per_epoch"] for l in layouts}) == 1
    expected_batches = -(-(-(-size // shards)) // batch)
    assert layouts[0]["batches_per_epoch"] == expected_batches
    for epoch in range(2):
        union: list[int] = []
        for i, l in enumerate(layouts):
            indices = _native.epoch_indices(size, shards, i, batch, epoch, True, 99)
            assert len(indices) == l["padded_shard_size"] == expected_batches * batch
            real, padding = indices[: l["size"]], indices[l["size"] :]
            assert set(padding) <= {real[-1]}
            union += real
        assert sorted(union) == list(range(size))


def test_permutation_depends_on_seed_and_epoch_only() -> None:
    a = _native.epoch_indices(500, 2, 0, 10, 0, True, 1)
    assert a == _native.epoch_indices(500, 2, 0, 10, 0, True, 1)
    assert a != _native.epoch_indices(500, 2, 0, 10, 1, True, 1)
    assert a != _native.epoch_indices(500, 2, 0, 10, 0, True, 2)
    # A golden value: the permutation is specified by us (a SplitMix64 Feistel network, cycle
    # walked), so every build, compiler and machine, hence every rank, must draw exactly this.
    assert _native.epoch_indices(10, 1, 0, 10, 0, True, 1234) == [5, 9, 7, 4, 6, 3, 2, 0, 1, 8]


def test_no_shuffle_keeps_list_order() -> None:
    assert _native.epoch_indices(10, 2, 1, 4, 3, False) == [5, 6, 7, 8, 9, 9, 9, 9]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1, 0, 8), "the UUID list is empty"),
        ((10, 2, 2, 8), "shard_id 2 is out of range for num_shards 2"),
        ((10, 0, 0, 8), "num_shards must be >= 1"),
        ((10, 2, -1, 8), "shard_id -1 is out of range"),
    ],
)
def test_layout_errors(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        _native.shard_layout(*args)


def test_uuid_parsing_matches_python() -> None:
    for _ in range(100):
        u = uuid.uuid4()
        assert _native.parse_uuid(str(u)) == u.bytes
        assert _native.parse_uuid(str(u).upper()) == u.bytes
    for bad in ["", "1234", str(uuid.uuid4())[:-1] + "g", str(uuid.uuid4()).replace("-", "")]:
        with pytest.raises(ArgumentError, match="is not a UUID"):
            _native.parse_uuid(bad)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("Data", "data"), ("label_2", "label_2"), ('"MixedCase"', "MixedCase"),
     ("A" * 60, "a" * 60), ('"Any name; 60 ' + "x" * 46 + '"', "Any name; 60 " + "x" * 46)],
)
def test_column_identifiers(name: str, canonical: str) -> None:
    """Columns: any length (Cassandra limits keyspace and table names only)."""
    assert _native.canonical_identifier(name, "column") == canonical


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "x;DROP", '"a"b"', '""', '"a\x01"'])
def test_bad_column_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ArgumentError, match="is not a valid CQL identifier"):
        _native.canonical_identifier(name, "data_col")


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("Imagenette", "imagenette"), ('"Mixed_Case"', "Mixed_Case"), ('"1st"', "1st"),
     ('"_x"', "_x"), ("a" * 48, "a" * 48)],
)
def test_keyspace_and_table_identifiers(name: str, canonical: str) -> None:
    assert _native.canonical_identifier(name, "table", "keyspace_or_table") == canonical


@pytest.mark.parametrize(
    ("name", "rule"),
    [("a" * 49, "48 characters"), ('"' + "a" * 49 + '"', "48 characters"),
     ('"a b"', "letters, digits"), ('"a-b"', "letters, digits"), ("1abc", "start with a letter"),
     ('""', "empty")],
)
def test_bad_keyspace_and_table_identifiers_name_the_rule(name: str, rule: str) -> None:
    with pytest.raises(ArgumentError, match=f"is not a valid CQL identifier: .*{rule}"):
        _native.canonical_identifier(name, "table", "keyspace_or_table")
