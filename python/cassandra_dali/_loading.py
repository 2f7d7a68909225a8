"""Loads the compiled parts on import: the engine (through ``_native``), the driver search path,
and the DALI plugin that registers ``fn.crs4.cassandra`` and ``fn.crs4.cassandra_interactive``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from . import _native

PLUGIN_FILE = "libcassandra_dali_plugin.so"


def bundled_driver_path() -> str:
    """Path of the DataStax driver copy inside the ``acsylla`` wheel, or "" if not installed.

    Found without importing acsylla: only the file is needed."""
    spec = importlib.util.find_spec("acsylla")
    if spec is None or not spec.submodule_search_locations:
        return ""
    for location in spec.submodule_search_locations:
        found = sorted(Path(location, "_cython").glob("cyacsylla*.so"))
        if found:
            return str(found[0])
    return ""


def check_dali_version() -> str:
    import nvidia.dali

    built_with = _native.built_with_dali
    if nvidia.dali.__version__ != built_with:
        raise ImportError(
            f"cassandra_dali was built against DALI {built_with}, but DALI "
            f"{nvidia.dali.__version__} is installed: a DALI plugin only works with the DALI "
            f"version it was compiled for. Install nvidia-dali-cuda120=={built_with} or rebuild "
            "cassandra-dali."
        )
    return built_with


def load_plugin() -> Path:
    import nvidia.dali.plugin_manager as plugin_manager

    plugin = Path(_native.__file__).with_name(PLUGIN_FILE)
    if not plugin.exists():
        raise ImportError(f"the DALI plugin {plugin} is missing from the installation")
    plugin_manager.load_library(str(plugin))
    return plugin


def initialise() -> Path:
    _native.set_bundled_driver_path(bundled_driver_path())
    check_dali_version()
    return load_plugin()
