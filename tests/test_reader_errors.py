"""Every error the reader can raise reaches Python with a message naming the culprit, quickly."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cassandra_dali
import pytest
from cassandra_dali import server, telemetry
from reader_helpers import Dataset, cassandra_pipeline, reader_kwargs, write_dataset
from servers import extra_server
from tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, 40, seed=1)


def _pipeline_error(**reader_args: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        pipe = cassandra_pipeline(8, **reader_args)
        pipe.run()
    return caught.value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_row_names_uuid_and_table(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    ghost = str(uuid.uuid4())
    table = f"{dataset.keyspace}.data_int"
    err = _pipeline_error(
        **reader_kwargs(cassandra_server, table, source_uuids=dataset.ids[:7] + [ghost],
                        shuffle_every_epoch=False)
    )
    assert ghost in str(err) and table in str(err) and "no row" in str(err)
    reader = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port)
    with pytest.raises(cassandra_dali.MissingRowError, match=ghost):
        reader.read([dataset.ids[0], ghost])
    data, _labels, _ = reader.read(dataset.ids[:2])  # the reader still works afterwards
    assert len(data) == 2


@pytest.mark.parametrize(("consistency", "again"), [("LOCAL_ONE", "LOCAL_QUORUM"),
                                                    ("one", "QUORUM"), ("LOCAL_QUORUM", None)])
def test_a_row_missing_below_a_quorum_is_read_again_at_one(
    cassandra_server: server.ServerInfo, dataset: Dataset, consistency: str, again: str | None
) -> None:
    # Below a quorum the replica read may have missed the write: the row is read once more at a
    # quorum before it is reported missing. At RF 1 it is missing for good. max_retries=0: the
    # re-read is no retry round, so it cannot turn the missing row into a ReadError.
    ghost = str(uuid.uuid4())
    table = f"{dataset.keyspace}.data_int"
    reader = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port,
                                   consistency=consistency, max_retries=0)
    before = telemetry.of(reader)
    with pytest.raises(cassandra_dali.MissingRowError) as caught:
        reader.read([dataset.ids[0], ghost, dataset.ids[1]])
    message = str(caught.value)
    after = telemetry.of(reader)
    assert message.startswith(f"no row with id {ghost} in table '{table}'"), message
    if again:
        assert f"(read at {consistency.upper()} and again at {again})" in message, message
        assert (after.retries - before.retries, after.errors - before.errors) == (1, 1)
    else:  # a quorum already: its answer stands
        assert "again" not in message, message
        assert (after.retries - before.retries, after.errors - before.errors) == (0, 1)
    # Found rows are read once, at the configured level.
    data, labels, _ = reader.read(dataset.ids[:4])
    assert [int(x) for x in labels] == list(range(4))
    assert telemetry.of(reader).retries == after.retries


def test_an_unknown_local_datacenter_is_named(cassandra_server: server.ServerInfo) -> None:
    with pytest.raises(cassandra_dali.ConnectionError) as caught:
        cassandra_dali.Reader("ks.t", cassandra_port=cassandra_server.port,
                              local_datacenter="dc-on-the-moon", connect_timeout_ms=3000)
    message = str(caught.value)
    # Ours, and the driver's own words.
    assert "local_datacenter='dc-on-the-moon'" in message, message
    assert "local datacenter is valid" in message, message


@pytest.mark.parametrize(
    ("table", "args", "expected"),
    [
        ("no_such_ks.data_int", {}, "keyspace 'no_such_ks' does not exist"),
        ("{ks}.no_such_table", {}, "table '{ks}.no_such_table' does not exist"),
        ("{ks}.data_int", {"data_col": "payload"}, "data_col column 'payload' does not exist"),
        ("{ks}.data_int", {"label_col": "tag"}, "column 'tag' does not exist"),
        ("{ks}.wrong_types", {}, "data_col column 'data' of table '{ks}.wrong_types' is text, expected blob"),
        ("{ks}.data_int", {"label_type": "blob"}, "column 'label' of table '{ks}.data_int' is int, expected blob"),
    ],
)
def test_schema_errors(
    cassandra_server: server.ServerInfo, dataset: Dataset, table: str, args: dict[str, Any], expected: str
) -> None:
    ks = dataset.keyspace
    err = _pipeline_error(
        **reader_kwargs(cassandra_server, table.format(ks=ks), source_uuids=dataset.ids, **args)
    )
    assert expected.format(ks=ks) in str(err)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"source_uuids": ["not-a-uuid"]}, "source_uuids[0] = 'not-a-uuid' is not a UUID"),
        ({"source_uuids": []}, "source_uuids is empty"),
        ({"shard_id": 3, "num_shards": 3}, "shard_id 3 is out of range for num_shards 3"),
        ({"label_type": "float"}, "label_type 'float'"),
        ({"table": "ks.t; DROP KEYSPACE ks"}, "is not a valid CQL identifier"),
        ({"table": "no_keyspace"}, "must be given as 'keyspace.table'"),
        ({"table": '"my-ks".data_int'}, "only letters, digits and '_' in keyspace and table names"),
        ({"table": "ks." + "t" * 49}, "at most 48 characters in keyspace and table names"),
        ({"request_timeout_ms": 0}, "request_timeout_ms=0 must be >= 1"),
        ({"connect_timeout_ms": -1}, "connect_timeout_ms=-1 must be >= 1"),
        ({"max_requests_in_flight": 16385}, "max_requests_in_flight=16385 must be between 1"),
    ],
)
def test_argument_errors(
    cassandra_server: server.ServerInfo, dataset: Dataset, args: dict[str, Any], expected: str
) -> None:
    kwargs = reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids)
    kwargs.update(args)
    if "source_uuids" in args and args["source_uuids"] and args["source_uuids"][0] == "not-a-uuid":
        kwargs["source_uuids"] = dataset.ids[:5] + ["not-a-uuid"]
        expected = "source_uuids[5] = 'not-a-uuid' is not a UUID"
    err = _pipeline_error(**kwargs)
    assert expected in str(err)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"request_timeout_ms": 0}, "request_timeout_ms=0 must be >= 1 (0 would be the driver's "
                                    "'no timeout'"),
        ({"connect_timeout_ms": 0}, "connect_timeout_ms=0 must be >= 1"),
        ({"retry_budget_ms": -1}, "retry_budget_ms=-1 must be >= 0"),
        ({"max_requests_in_flight": 0}, "max_requests_in_flight=0 must be between 1 and 16384"),
    ],
)
def test_python_reader_refuses_bounds_before_connecting(args: dict[str, Any], expected: str) -> None:
    # Refused before any connection: the port is one nothing listens on.
    with pytest.raises(ValueError) as caught:
        cassandra_dali.Reader("ks.t", cassandra_port=_free_port(), **args)
    assert expected in str(caught.value)


def test_long_column_names_read(cassandra_server: server.ServerInfo, cql_session: Any,
                                dataset: Dataset) -> None:
    # Cassandra limits keyspace and table names to 48 characters, not column names.
    data_col, label_col = "sample_bytes_" + "d" * 50, '"Label Of The Sample ' + "L" * 45 + '"'
    table = f"{dataset.keyspace}.long_columns"
    cql_session.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, {data_col} blob, "
                        f"{label_col} int)")
    insert = cql_session.prepare(f"INSERT INTO {table} (id, {data_col}, {label_col}) VALUES (?, ?, ?)")
    for i in range(3):
        cql_session.execute(insert, (uuid.UUID(dataset.ids[i]), dataset.blobs[i], i))
    reader = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port,
                                   data_col=data_col.upper(), label_col=label_col)
    data, labels, _ = reader.read(dataset.ids[:3])
    assert [bytes(d) for d in data] == dataset.blobs[:3]
    assert list(labels) == [0, 1, 2]


def test_bad_rows_file_names_file_and_line(
    cassandra_server: server.ServerInfo, dataset: Dataset, tmp_path: Path
) -> None:
    rows = tmp_path / "bad.rows"
    rows.write_text(dataset.ids[0] + "\n\nzzzz\n")
    err = _pipeline_error(
        **reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int", source_uuids_file=str(rows))
    )
    assert f"rows file '{rows}', line 3: 'zzzz' is not a UUID" in str(err)


def test_unreachable_server_names_host_and_port(dataset: Dataset) -> None:
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(cassandra_dali.ConnectionError, match=f"127.0.0.1:{port}"):
        cassandra_dali.Reader("ks.t", cassandra_port=port, connect_timeout_ms=1000)
    err = _pipeline_error(
        table=f"{dataset.keyspace}.data_int", cassandra_ips=["127.0.0.1"], cassandra_port=port,
        connect_timeout_ms=1000, source_uuids=dataset.ids,
    )
    assert f"cannot connect to Cassandra at 127.0.0.1:{port}" in str(err)
    assert time.monotonic() - started < 30


@pytest.fixture
def proxy(cassandra_server: server.ServerInfo) -> Iterator[TcpProxy]:
    """A fault-injecting TCP proxy in front of the session's server."""
    p = TcpProxy(cassandra_server.host, cassandra_server.port)
    try:
        yield p
    finally:
        p.close()


def test_request_timeout_after_retries(proxy: TcpProxy, dataset: Dataset) -> None:
    reader = cassandra_dali.Reader(
        f"{dataset.keyspace}.data_int", cassandra_port=proxy.port, request_timeout_ms=400,
        max_retries=2, retry_backoff_ms=50,
    )
    assert len(reader.read(dataset.ids[:4])[0]) == 4
    proxy.stalled.set()
    started = time.monotonic()
    with pytest.raises(cassandra_dali.ReadError) as caught:
        reader.read(dataset.ids[:4])
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "after 2 retries" in message and f"{dataset.keyspace}.data_int" in message
    assert "timed out" in message.lower() or "timeout" in message.lower()
    assert elapsed < 20
    proxy.stalled.clear()


def test_recovers_after_the_connection_is_cut(proxy: TcpProxy, dataset: Dataset) -> None:
    reader = cassandra_dali.Reader(
        f"{dataset.keyspace}.data_int", cassandra_port=proxy.port, request_timeout_ms=2000,
        max_retries=5, retry_backoff_ms=200,
    )
    assert len(reader.read(dataset.ids[:8])[0]) == 8
    proxy.cut()
    # The driver reconnects through the proxy; retries with backoff cover the gap.
    _data, labels, _ = reader.read(dataset.ids[:8])
    assert [int(x) for x in labels] == list(range(8))


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ServerInfo]:
    directory = tmp_path_factory.mktemp("secure-cassandra")
    with extra_server(directory, heap="768M", auth=True, tls=True) as info:
        yield info


def test_auth_and_tls(secure_server: server.ServerInfo, tmp_path: Path) -> None:
    assert secure_server.ca_cert is not None
    ca = str(secure_server.ca_cert)
    good = dict(cassandra_port=secure_server.port, use_ssl=True, ssl_certificate=ca,
                username="cassandra", password="cassandra", connect_timeout_ms=3000)
    # Right credentials and trusted CA: the schema check runs and reports the missing keyspace.
    with pytest.raises(cassandra_dali.SchemaError, match="keyspace 'nope' does not exist"):
        cassandra_dali.Reader("nope.t", **good)
    with pytest.raises(cassandra_dali.ConnectionError, match="authentication failed.*user 'cassandra'"):
        cassandra_dali.Reader("nope.t", **{**good, "password": "wrong"})
    # A CA that did not sign the server's certificate.
    other_ca = server.make_ca(tmp_path, server.find_java_home(), "another-password")
    with pytest.raises(cassandra_dali.ConnectionError, match="TLS connection at .* failed"):
        cassandra_dali.Reader("nope.t", **{**good, "ssl_certificate": str(other_ca)})
    with pytest.raises(cassandra_dali.ConnectionError, match=f":{secure_server.port}"):
        cassandra_dali.Reader("nope.t", **{**good, "use_ssl": False})
    with pytest.raises(cassandra_dali.ConnectionError, match="cannot read PEM file"):
        cassandra_dali.Reader("nope.t", **{**good, "ssl_certificate": str(tmp_path / "missing.pem")})



def test_tls_verifies_by_default(
    secure_server: server.ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert secure_server.ca_cert is not None
    base: dict[str, Any] = dict(cassandra_port=secure_server.port, use_ssl=True,
                                username="cassandra", password="cassandra",
                                connect_timeout_ms=3000)
    # No CA given: the system's trust store is used, and it does not know the launcher's CA.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(cassandra_dali.ConnectionError,
                       match="trusting the system store|no system trust store was found"):
        cassandra_dali.Reader("nope.t", **base)
    # SSL_CERT_FILE names the system store: now it does.
    monkeypatch.setenv("SSL_CERT_FILE", str(secure_server.ca_cert))
    with pytest.raises(cassandra_dali.SchemaError, match="keyspace 'nope' does not exist"):
        cassandra_dali.Reader("nope.t", **base)
    monkeypatch.delenv("SSL_CERT_FILE")
    # The reference project's behaviour without a CA, now only when asked for by name.
    with pytest.raises(cassandra_dali.SchemaError, match="keyspace 'nope' does not exist"):
        cassandra_dali.Reader("nope.t", **base, ssl_verify="none")
    with pytest.raises(ValueError, match="ssl_verify 'maybe' is not one of"):
        cassandra_dali.Reader("nope.t", **base, ssl_verify="maybe")


def test_tls_checks_the_servers_address(secure_server: server.ServerInfo) -> None:
    """Reached as 127.0.0.2 (a proxy), the server's certificate (localhost, 127.0.0.1) does not
    name the address connected to: refused unless only the certificate is to be checked."""
    assert secure_server.ca_cert is not None
    proxy = TcpProxy(secure_server.host, secure_server.port, listen_host="127.0.0.2")
    args: dict[str, Any] = dict(cassandra_ips=["127.0.0.2"], cassandra_port=proxy.port,
                                use_ssl=True, ssl_certificate=str(secure_server.ca_cert),
                                username="cassandra", password="cassandra",
                                connect_timeout_ms=3000)
    try:
        with pytest.raises(cassandra_dali.ConnectionError,
                           match=f"TLS connection at 127.0.0.2:{proxy.port} failed"):
            cassandra_dali.Reader("nope.t", **args)
        for relaxed in ({"ssl_verify": "cert"}, {"ssl_verify_identity": False}):
            with pytest.raises(cassandra_dali.SchemaError, match="keyspace 'nope'"):
                cassandra_dali.Reader("nope.t", **args, **relaxed)
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def mutual_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ServerInfo]:
    directory = tmp_path_factory.mktemp("mtls-cassandra")
    with extra_server(directory, heap="768M", tls=True, client_auth=True) as info:
        yield info


def test_mutual_tls(mutual_tls_server: server.ServerInfo) -> None:
    """A server that requires client certificates: the launcher made one (and its own readiness
    check presented it); the reader presents it too, and without it is refused."""
    info = mutual_tls_server
    assert info.ca_cert and info.client_cert and info.client_key
    assert info.client_key.stat().st_mode & 0o077 == 0, "the client key is not owner-only"
    args: dict[str, Any] = dict(cassandra_port=info.port, use_ssl=True,
                                ssl_certificate=str(info.ca_cert), connect_timeout_ms=3000)
    with pytest.raises(cassandra_dali.ConnectionError, match=f"at 127.0.0.1:{info.port}"):
        cassandra_dali.Reader("nope.t", **args)
    with pytest.raises(cassandra_dali.SchemaError, match="keyspace 'nope' does not exist"):
        cassandra_dali.Reader("nope.t", **args, ssl_own_certificate=str(info.client_cert),
                              ssl_own_key=str(info.client_key))
    session = info.connect()  # the Python tools' path (cassandra-driver) presents it as well
    try:
        assert session.execute("SELECT release_version FROM system.local").one()
    finally:
        session.cluster.shutdown()


def test_no_password_in_a_serialized_pipeline(
    secure_server: server.ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password reaches the operator as a file or an environment variable's name: the
    serialized pipeline holds neither the password nor anything that decodes to it."""
    from nvidia.dali import fn, pipeline_def

    secret = f"pw-{uuid.uuid4().hex}"  # a role of its own: "cassandra" is in every pipeline
    admin = secure_server.connect()
    try:
        admin.execute(f"CREATE ROLE IF NOT EXISTS dali_reader WITH PASSWORD = '{secret}' "
                      "AND LOGIN = true")
        admin.execute(f"ALTER ROLE dali_reader WITH PASSWORD = '{secret}'")
    finally:
        admin.cluster.shutdown()
    password_file = tmp_path / "password"
    password_file.write_text(secret + "\n")
    monkeypatch.setenv("CASSANDRA_DALI_TEST_PASSWORD", secret)
    base: dict[str, Any] = dict(cassandra_port=secure_server.port, use_ssl=True,
                                ssl_certificate=str(secure_server.ca_cert), username="dali_reader",
                                connect_timeout_ms=3000)
    for how in ({"password_file": str(password_file)},
                {"password_env": "CASSANDRA_DALI_TEST_PASSWORD"}):
        @pipeline_def(batch_size=1, num_threads=1, device_id=None)
        def pipe() -> Any:
            return tuple(fn.crs4.cassandra(  # type: ignore[attr-defined]
                table="nope.t", source_uuids=[str(uuid.uuid4())],
                **base, **how))

        p = pipe()
        assert secret.encode() not in p.serialize(), how
        # Authentication succeeded: the schema check is what fails.
        with pytest.raises(Exception, match="keyspace 'nope' does not exist"):
            p.build()
    with pytest.raises(ValueError, match="CASSANDRA_DALI_UNSET_VARIABLE is not set"):
        cassandra_dali.Reader("nope.t", **base, password_env="CASSANDRA_DALI_UNSET_VARIABLE")
    with pytest.raises(ValueError, match="password_file '.*missing' cannot be read"):
        cassandra_dali.Reader("nope.t", **base, password_file=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="at most one of password, password_file"):
        cassandra_dali.Reader("nope.t", **base, password=secret, password_env="X")


def test_secrets_stay_out_of_reprs_and_world_readable_files(
    cassandra_server: server.ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cassandra_dali.client import Connection

    conn = Connection(username="u", password="s3cret-value")
    info = server.ServerInfo(host="h", port=1, username="u", password="s3cret-value")
    assert "s3cret-value" not in repr(conn) and "s3cret-value" not in repr(info)
    # What the tools hand the reader: a variable's name when the password came from it.
    monkeypatch.setenv("CASSANDRA_USERNAME", "u")
    monkeypatch.setenv("CASSANDRA_PASSWORD", "s3cret-value")
    assert Connection.from_env().reader_kwargs()["password_env"] == "CASSANDRA_PASSWORD"
    (tmp_path / "pw").write_text("from-a-file\n")
    from_file = Connection(username="u", password_file=str(tmp_path / "pw"))
    assert from_file.reader_kwargs()["password_file"] == str(tmp_path / "pw")
    assert from_file.secret() == "from-a-file"
    if cassandra_server.dir is not None:  # our own server: its state file holds the password
        state = cassandra_server.dir / "server.json"
        assert state.stat().st_mode & 0o077 == 0, oct(state.stat().st_mode)
