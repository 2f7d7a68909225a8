"""Import-time behaviour: plugin loading, the DALI version pin, and driver discovery."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cassandra_dali
from cassandra_dali import _loading, _native


def test_plugin_registers_both_operators() -> None:
    from nvidia.dali import fn

    assert cassandra_dali.PLUGIN_PATH.exists()
    assert callable(fn.crs4.cassandra) and callable(fn.crs4.cassandra_interactive)


def test_dali_version_mismatch_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native, "built_with_dali", "0.0.1")
    with pytest.raises(ImportError, match=r"built against DALI 0\.0\.1, but DALI .* is installed"
                                          r".*cassandra-dali\[cuda12\].*cassandra-dali\[cuda13\]"):
        _loading.initialise()


def test_two_dalis_over_each_other_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_loading, "installed_dali_distributions",
                        lambda: {"nvidia-dali-cuda120": "2.4.0", "nvidia-dali-cuda130": "2.4.0"})
    with pytest.raises(ImportError, match=r"two DALI wheels .*nvidia-dali-cuda120 2\.4\.0, "
                                          r"nvidia-dali-cuda130 2\.4\.0"):
        _loading.initialise()


# A process where nvidia.dali cannot be imported (as without the [cuda12]/[cuda13] extras).
_WITHOUT_DALI = """
import importlib.abc, importlib.metadata, sys
class NoDali(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "nvidia.dali" or name.startswith("nvidia.dali."):
            raise ImportError("no DALI here")
        return None
sys.meta_path.insert(0, NoDali())
real_version = importlib.metadata.version
def version(name):
    if name.startswith("nvidia-dali"):
        raise importlib.metadata.PackageNotFoundError(name)
    return real_version(name)
importlib.metadata.version = version
import cassandra_dali
from cassandra_dali import sources
assert cassandra_dali.PLUGIN_PATH is None
assert cassandra_dali.Reader  # needs no DALI
try:
    sources.cassandra_node({"table": "ks.t"})
except ImportError as error:
    print(error)
"""


def test_without_dali_the_package_imports_and_says_what_to_install() -> None:
    result = subprocess.run([sys.executable, "-c", _WITHOUT_DALI], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "NVIDIA DALI is not installed" in result.stdout
    assert "'cassandra-dali[cuda12]' (CUDA 12) or 'cassandra-dali[cuda13]'" in result.stdout


def test_bundled_driver_is_found_in_the_acsylla_wheel() -> None:
    path = _loading.bundled_driver_path()
    assert "acsylla" in path and path.endswith(".so")


def _driver_info_in_subprocess(env_driver: str) -> subprocess.CompletedProcess[str]:
    code = "import cassandra_dali; print(cassandra_dali.driver_info())"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={"CASSANDRA_DALI_DRIVER": env_driver, "PATH": "/usr/bin:/bin"},
    )


def test_explicit_driver_that_cannot_load_is_named() -> None:
    result = _driver_info_in_subprocess("/nonexistent/libcassandra.so.2")
    assert result.returncode != 0
    assert "cannot load the DataStax C/C++ Cassandra driver" in result.stderr
    assert "environment: /nonexistent/libcassandra.so.2" in result.stderr


def test_library_without_the_driver_symbols_is_refused() -> None:
    result = _driver_info_in_subprocess("libz.so.1")
    assert result.returncode != 0
    assert "has no symbol 'cass_log_set_level'" in result.stderr


def test_explicit_driver_path_is_reported() -> None:
    bundled = _loading.bundled_driver_path()
    result = _driver_info_in_subprocess(bundled)
    assert result.returncode == 0, result.stderr
    assert "'provider': 'environment'" in result.stdout and bundled in result.stdout
