"""Type stubs for the compiled engine module (csrc/python/native_module.cc)."""

from typing import Any

import numpy as np
import numpy.typing as npt

built_with_dali: str

class CassandraDaliError(RuntimeError): ...
class ArgumentError(ValueError): ...
class DriverLoadError(CassandraDaliError): ...
class ConnectionError(CassandraDaliError): ...
class SchemaError(CassandraDaliError): ...
class MissingRowError(CassandraDaliError): ...
class ReadError(CassandraDaliError): ...

def set_bundled_driver_path(path: str) -> None: ...
def load_driver(path: str = "") -> dict[str, Any]: ...
def driver_info() -> dict[str, Any]: ...
def parse_uuid(text: str) -> bytes: ...
def read_uuid_file(path: str) -> list[str]: ...
def sample_buffer_allocations() -> dict[str, int]: ...
def reader_telemetry() -> list[dict[str, Any]]: ...
def canonical_identifier(name: str, what: str = "name") -> str: ...
def crc32c(data: bytes | bytearray | memoryview) -> int: ...
def shard_layout(dataset_size: int, num_shards: int, shard_id: int, batch_size: int) -> dict[str, int]: ...
def epoch_indices(
    dataset_size: int,
    num_shards: int,
    shard_id: int,
    batch_size: int,
    epoch: int,
    shuffle: bool = True,
    seed: int = 1234,
) -> list[int]: ...

class Reader:
    def __init__(
        self,
        table: str,
        cassandra_ips: list[str] = ...,
        cassandra_port: int = 9042,
        id_col: str = "id",
        data_col: str = "data",
        label_col: str = "label",
        label_type: str = "int",
        checksum_col: str = "",
        username: str = "",
        password: str = "",
        password_file: str = "",
        password_env: str = "",
        use_ssl: bool = False,
        ssl_certificate: str = "",
        ssl_own_certificate: str = "",
        ssl_own_key: str = "",
        ssl_own_key_pass: str = "",
        ssl_verify: str = "full",
        ssl_verify_identity: bool = True,
        io_threads: int = 2,
        connections_per_host: int = 2,
        consistency: str = "LOCAL_ONE",
        connect_timeout_ms: int = 5000,
        request_timeout_ms: int = 12000,
        retry_budget_ms: int = 60000,
        max_retries: int = -1,
        retry_backoff_ms: int = 100,
        max_requests_in_flight: int = 16384,
        ooo: bool = False,
        driver_path: str = "",
    ) -> None: ...
    def telemetry(self) -> dict[str, Any]: ...
    def read(
        self, uuids: list[str]
    ) -> tuple[list[npt.NDArray[np.uint8]], npt.NDArray[np.int32] | list[npt.NDArray[np.uint8]] | None, list[str]]: ...
