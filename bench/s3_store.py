"""The comparison users would otherwise make: the same JPEGs in an S3-compatible object store
(MinIO, on this machine), read by DALI's own ``fn.readers.file`` with ``s3://`` paths.

MinIO is built once from the Go module proxy into the cache (``make minio``; it is a program
the bench runs, like the Cassandra server, not a dependency of the package: it is AGPL-licensed
and nothing of it ships). DALI's S3 client takes the endpoint from ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from cassandra_dali import server

# The commit the Go module proxy serves as "latest" for github.com/minio/minio on 2026-11-27.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
BUCKET = "bench"


def minio_binary() -> Path | None:
    """The MinIO server built by ``make minio``, or None."""
    path = server.cache_root() / "minio" / "bin" / "minio"
    return path if path.is_file() else None


def build_minio() -> Path:
    """``go install`` MinIO into the cache (several minutes the first time)."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not on PATH: it is needed once to build MinIO")
    target = server.cache_root() / "minio" / "bin"
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "install", "-trimpath", f"github.com/minio/minio@{MINIO_VERSION}"],
                   check=True, env={**os.environ, "GOBIN": str(target)})
    path = minio_binary()
    assert path is not None
    return path


class MinioStore:
    """A MinIO server in ``directory`` on a free port, with a bucket holding ``root``'s
    ``train/`` tree; ``environment`` is what DALI's S3 client needs to reach it."""

    def __init__(self, directory: Path, root: Path) -> None:
        binary = minio_binary()
        if binary is None:
            raise RuntimeError("no MinIO binary: run `make minio` (or bench/s3_store.py) first")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.user, self.password = "bench", secrets.token_hex(16)
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._log = open(directory.parent / f"{directory.name}.log", "wb")
        self.process = subprocess.Popen(
            [str(binary), "server", str(directory), "--quiet", "--address", f"127.0.0.1:{port}",
             "--console-address", f"127.0.0.1:{_free_port()}"],
            env={**os.environ, "MINIO_ROOT_USER": self.user, "MINIO_ROOT_PASSWORD": self.password},
            stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()
        self._upload(root)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.user,
                "AWS_SECRET_ACCESS_KEY": self.password, "AWS_REGION": "us-east-1"}

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"MinIO exited ({self.process.returncode}); see {self._log.name}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/live", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"MinIO did not answer at {self.endpoint} within {timeout_s:.0f} s")

    def _upload(self, root: Path) -> None:
        from minio import Minio

        client = Minio(self.endpoint.removeprefix("http://"), access_key=self.user,
                       secret_key=self.password, secure=False)
        client.make_bucket(BUCKET)
        files = sorted((root / "train").rglob("*.JPEG"))
        for path in files:
            client.fput_object(BUCKET, str(path.relative_to(root)), str(path),
                               content_type="image/jpeg")
        print(f"{len(files)} JPEGs uploaded to s3://{BUCKET}/train at {self.endpoint}")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> Any:
    print(build_minio())


if __name__ == "__main__":
    main()
