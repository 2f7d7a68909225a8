"""cassandra-dali: an NVIDIA DALI reader that streams training samples from Apache Cassandra.

Importing the package loads the DALI plugin, so ``nvidia.dali.fn.crs4.cassandra`` and
``fn.crs4.cassandra_interactive`` exist. DALI comes with an extra, one per CUDA major version:
``cassandra-dali[cuda12]`` or ``[cuda13]``; without DALI the package imports all the same
(``PLUGIN_PATH`` is None, :func:`require_dali` says what to install) and ``Reader`` reads rows by
UUID with the same engine. The tools' errors that a user can fix are all :class:`UserError`.
"""

from __future__ import annotations

from typing import Any

from . import _native
from ._loading import initialise as _initialise
from ._loading import require_dali
from ._native import (
    ArgumentError,
    CassandraDaliError,
    ConnectionError,
    DriverLoadError,
    MissingRowError,
    Reader,
    ReadError,
    SchemaError,
)
from .errors import UserError

__version__ = "0.1.0"

PLUGIN_PATH = _initialise()


def driver_info() -> dict[str, Any]:
    """Loads the DataStax C/C++ driver if needed and says which library it is.

    Returns ``{"loaded": bool, "path": str, "provider": str, "missing_optional": [str]}``;
    provider is one of ``explicit``, ``environment`` ($CASSANDRA_DALI_DRIVER), ``system``
    (libcassandra.so.2) or ``acsylla`` (the copy inside the acsylla wheel); missing_optional
    names the optional functions the library lacks (the token ring's, in drivers before 2.16)."""
    return dict(_native.load_driver(""))


__all__ = [
    "ArgumentError",
    "CassandraDaliError",
    "ConnectionError",
    "DriverLoadError",
    "MissingRowError",
    "PLUGIN_PATH",
    "ReadError",
    "Reader",
    "SchemaError",
    "UserError",
    "driver_info",
    "require_dali",
]
