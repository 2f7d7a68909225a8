"""The Cassandra server's jars without Maven: a lock per supported release (each jar of
``cassandra-all``'s runtime classpath as ``group:artifact:version[:classifier]`` and its SHA-256,
committed under ``locks/``), fetched over HTTPS from a Maven repository and checked against it.

Maven Central serves only MD5 and SHA-1 sums beside its files reliably, so the lock's SHA-256 is
what a fetched jar is checked against; a jar whose hash differs is refused, naming it. The lock
is made once per release by a maintainer (``cassandra-dali server lock-jars``, which runs Maven
once: ``jars.make_lock``); users never need Maven. The repository is a setting
(``CASSANDRA_DALI_MAVEN_REPOSITORY``) for mirrors; ``file://`` URLs work too.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import http.client
import os
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from .layout import ServerError

LOCK_DIR = Path(__file__).parent / "locks"
DEFAULT_REPOSITORY = "https://repo.maven.apache.org/maven2"
REPOSITORY_VARIABLE = "CASSANDRA_DALI_MAVEN_REPOSITORY"
FETCH_TIMEOUT_S = 60.0
FETCH_THREADS = 8


@dataclasses.dataclass(frozen=True)
class LockedJar:
    group: str
    artifact: str
    version: str
    classifier: str
    sha256: str

    @property
    def coordinates(self) -> str:
        tail = f":{self.classifier}" if self.classifier else ""
        return f"{self.group}:{self.artifact}:{self.version}{tail}"

    @property
    def filename(self) -> str:
        tail = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{tail}.jar"

    @property
    def path(self) -> str:
        """Where the repository keeps it (Maven's repository layout)."""
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


def lock_path(version: str) -> Path:
    return LOCK_DIR / f"cassandra-{version}.lock"


def locked_versions() -> list[str]:
    """The releases this package can fetch without Maven."""
    return sorted(p.name[len("cassandra-"):-len(".lock")] for p in LOCK_DIR.glob("cassandra-*.lock"))


def read_lock(version: str) -> list[LockedJar]:
    path = lock_path(version)
    jars = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            coordinates, sha256 = line.split()
            parts = coordinates.split(":")
            group, artifact, jar_version = parts[:3]
            classifier = parts[3] if len(parts) == 4 else ""
            if len(parts) not in (3, 4) or len(sha256) != 64:
                raise ValueError
            int(sha256, 16)
        except ValueError:
            raise ServerError(f"{path}:{number}: expected 'group:artifact:version[:classifier] "
                              f"SHA256', got {raw!r}") from None
        jars.append(LockedJar(group, artifact, jar_version, classifier, sha256.lower()))
    return jars


def repository() -> str:
    return os.environ.get(REPOSITORY_VARIABLE, DEFAULT_REPOSITORY).rstrip("/")


def fetch_locked(version: str, into: Path) -> int:
    """Downloads every jar of the release's lock into ``into`` (created), each checked against
    its SHA-256; returns the bytes fetched. Raises ServerError naming the jar that failed."""
    jars = read_lock(version)
    base, lock = repository(), lock_path(version)
    into.mkdir(parents=True, exist_ok=True)
    pool = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS)
    try:
        futures = [pool.submit(_fetch_one, jar, base, into, lock) for jar in jars]
        # The first failure is raised as soon as it happens, not after every other jar.
        done, _ = concurrent.futures.wait(futures,
                                          return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return sum(future.result() for future in futures)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the jars in flight end (each bounded)


def _fetch_one(jar: LockedJar, base: str, into: Path, lock: Path) -> int:
    url = f"{base}/{jar.path}"
    target = into / jar.filename
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response, \
                open(target, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
        raise ServerError(f"cannot fetch {jar.coordinates} from {url}: {error} (the repository "
                          f"is ${REPOSITORY_VARIABLE}, default {DEFAULT_REPOSITORY})") from None
    if digest.hexdigest() != jar.sha256:
        target.unlink(missing_ok=True)
        raise ServerError(
            f"{jar.coordinates} fetched from {url} has SHA-256 {digest.hexdigest()}, but "
            f"{lock.name} says {jar.sha256}: refused (a tampered or corrupt download, or a "
            "mirror serving another build)")
    return size


def lock_entries(repository_layout: Path) -> list[LockedJar]:
    """The jars of a folder in Maven's repository layout (what ``copy-dependencies`` writes with
    ``-Dmdep.useRepositoryLayout=true``), with their SHA-256."""
    jars = []
    for path in sorted(repository_layout.rglob("*.jar")):
        relative = path.relative_to(repository_layout).parts
        *group, artifact, version, filename = relative
        stem = filename[: -len(".jar")]
        prefix = f"{artifact}-{version}"
        if not stem.startswith(prefix):
            raise ServerError(f"{path}: not in Maven's repository layout")
        classifier = stem[len(prefix) + 1:] if len(stem) > len(prefix) else ""
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        jars.append(LockedJar(".".join(group), artifact, version, classifier, sha256))
    return jars


def format_lock(version: str, jars: Iterable[LockedJar]) -> str:
    lines = [f"# The runtime classpath of org.apache.cassandra:cassandra-all:{version}, as Maven "
             "resolves it,", "# with each jar's SHA-256. Made by: cassandra-dali server "
             f"lock-jars --version {version}"]
    lines += [f"{jar.coordinates} {jar.sha256}" for jar in sorted(jars, key=lambda j: j.coordinates)]
    return "\n".join(lines) + "\n"
