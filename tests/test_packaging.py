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
    with pytest.raises(ImportError, match=r"built against DALI 0\.0\.1, but DALI .* is installed"):
        _loading.check_dali_version()


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
