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


# The DALI wheels the plugin runs on, one per CUDA major version (both install `nvidia.dali`), and
# the extra of this package that brings each.
DALI_DISTRIBUTIONS = {"nvidia-dali-cuda120": "cuda12", "nvidia-dali-cuda130": "cuda13"}


def _install_hint(version: str) -> str:
    return ("pip install 'cassandra-dali[cuda12]' (CUDA 12) or 'cassandra-dali[cuda13]' (CUDA 13), "
            f"which install " + " or ".join(f"{d}=={version}" for d in DALI_DISTRIBUTIONS))


def installed_dali_distributions() -> dict[str, str]:
    """The DALI wheels installed: distribution name -> version."""
    from importlib import metadata

    found = {}
    for name in DALI_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def dali_problem() -> str | None:
    """Why the DALI operators cannot be loaded here (None: they can): no DALI, another version
    than the plugin was built for, or two DALI wheels installed over each other."""
    built_with = _native.built_with_dali
    installed = installed_dali_distributions()
    if len(installed) > 1:
        return ("two DALI wheels are installed over each other ("
                + ", ".join(f"{d} {v}" for d, v in installed.items())
                + "): they share the nvidia.dali package, so one overwrote the other's files. "
                "Uninstall both, then install one: " + _install_hint(built_with))
    try:
        import nvidia.dali
    except ImportError as error:
        if installed:  # installed but broken: its own error says why
            name, version = next(iter(installed.items()))
            return (f"{name} {version} is installed but nvidia.dali does not import ({error}); "
                    "reinstall it: " + _install_hint(built_with))
        return (f"NVIDIA DALI is not installed: fn.crs4.cassandra needs DALI {built_with}; "
                + _install_hint(built_with) + ". cassandra_dali.Reader works without it")
    if nvidia.dali.__version__ != built_with:
        return (f"cassandra_dali was built against DALI {built_with}, but DALI "
                f"{nvidia.dali.__version__} is installed: a DALI plugin only works with the DALI "
                f"version it was compiled for. " + _install_hint(built_with)
                + ", or rebuild cassandra-dali")
    return None


def load_plugin() -> Path:
    import nvidia.dali.plugin_manager as plugin_manager

    plugin = Path(_native.__file__).with_name(PLUGIN_FILE)
    if not plugin.exists():
        raise ImportError(f"the DALI plugin {plugin} is missing from the installation")
    plugin_manager.load_library(str(plugin))
    return plugin


def initialise() -> Path | None:
    """Loads the plugin when a DALI it was built for is there; without DALI the package still
    imports (the Reader needs none) and :func:`require_dali` says what to install. A DALI of
    another version, or two of them, is an ImportError now: the plugin would not load."""
    _native.set_bundled_driver_path(bundled_driver_path())
    problem = dali_problem()
    if problem is not None:
        if installed_dali_distributions() or _dali_importable():
            raise ImportError(problem)
        return None
    return load_plugin()


def _dali_importable() -> bool:
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):  # no nvidia namespace, or a broken one
        return False


def require_dali() -> None:
    """Raises ImportError naming what to install when the DALI operators are not loaded."""
    problem = dali_problem()
    if problem is not None:
        raise ImportError(problem)
