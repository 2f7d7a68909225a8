"""A standalone Spark cluster on loopback, from the installed pyspark (which ships
``bin/spark-class`` but not the ``sbin`` start scripts): a master and N workers, each its own
JVM with its own cores, as on a real cluster. Used by ``bench/cluster_ingest.py`` and
``tests/test_spark.py``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from cassandra_dali import server


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SPARK_HOME"] = str(spark_home())
    env["PYSPARK_PYTHON"] = sys.executable  # executors must import cassandra_dali
    env["SPARK_LOCAL_IP"] = "127.0.0.1"  # loopback only, whatever the host name resolves to
    # Spark runs on the server's Java: the machine's JDK, else the [server] extra's runtime
    # (through a shim for the one module Spark's launcher names and that runtime lacks).
    if "JAVA_HOME" not in env:  # (spark_java_home may build a folder: only when it is used)
        env["JAVA_HOME"] = str(server.spark_java_home())
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandaloneSpark:
    """``spark://127.0.0.1:PORT`` with ``workers`` workers of ``cores`` cores and ``memory``
    each; daemons' logs and the executors' work directories under ``directory``."""

    def __init__(self, directory: Path, workers: int = 1, cores: int = 2,
                 memory: str = "2g") -> None:
        self.directory = directory
        self.workers, self.cores, self.memory = workers, cores, memory
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> StandaloneSpark:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, *args: str) -> Path:
        log = self.directory / f"{name}.log"
        with open(log, "wb") as out:
            self.processes.append(subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args], env=spark_env(),
                stdout=out, stderr=subprocess.STDOUT, cwd=self.directory,
                start_new_session=True))
        return log

    def start(self, timeout: float = 120.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                        "--port", str(self.port), "--webui-port", str(free_port()))
            logs = [self._spawn(
                f"worker{k}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                "--webui-port", str(free_port()), "--cores", str(self.cores),
                "--memory", self.memory, "--work-dir", str(self.directory / "work"), self.url)
                for k in range(1, self.workers + 1)]
            self._wait_registered(logs, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_registered(self, logs: list[Path], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A worker retries until the master listens, then logs its registration.
            if all("Successfully registered with master" in log.read_text(errors="replace")
                   for log in logs):
                return
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Spark daemon exited: see {self.directory}/*.log")
            time.sleep(0.5)
        raise RuntimeError(f"Spark workers did not register in {timeout} s: {self.directory}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
