"""A TCP proxy that adds a fixed round-trip time, for measuring readers across a long link on
one machine (netem needs root and a kernel module these machines do not have).

Each direction of each connection has a reader thread that stamps every chunk it receives with
the time it may leave (now + RTT/2) and a writer thread that sends it then: the delay is added
without limiting the bandwidth, as a long fat network would. Bytes and order are preserved.

The proxy runs in a process of its own (:class:`DelayProxy` starts it): a DALI pipeline holds
the GIL while it builds, so proxy threads in the reader's process would stall its connections.

    python bench/delay_proxy.py HOST PORT RTT_MS [LISTEN_HOST [LISTEN_PORT]]
                                                     (prints the port it listens on)

Listens on 127.0.0.1 and a free port unless told where: one proxy per node of a local cluster
listens on that node's own address (bench/hedged_reads.py).
"""

from __future__ import annotations

import collections
import socket
import subprocess
import sys
import threading
import time


class _Direction:
    def __init__(self, source: socket.socket, sink: socket.socket, delay_s: float) -> None:
        self.source, self.sink, self.delay_s = source, sink, delay_s
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = threading.Condition()
        self.closed = False
        for target in (self._read, self._write):
            threading.Thread(target=target, daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := self.source.recv(1 << 18):
                with self.ready:
                    self.queue.append((time.monotonic() + self.delay_s, chunk))
                    self.ready.notify()
        except OSError:
            pass
        with self.ready:
            self.closed = True
            self.ready.notify()

    def _write(self) -> None:
        try:
            while True:
                with self.ready:
                    while not self.queue and not self.closed:
                        self.ready.wait()
                    if not self.queue:
                        break
                    due, chunk = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.sink.sendall(chunk)
        except OSError:
            pass
        for sock in (self.sink, self.source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(target_host: str, target_port: int, rtt_ms: float, listen_host: str = "127.0.0.1",
          listen_port: int = 0) -> None:
    """Listens on ``listen_host:listen_port`` (0: a free port; the port is printed) and
    forwards with ``rtt_ms`` added, until stdin closes."""
    delay_s = rtt_ms / 2000.0
    listener = socket.create_server((listen_host, listen_port))
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            client, _ = listener.accept()
            try:
                upstream = socket.create_connection((target_host, target_port), timeout=10)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _Direction(client, upstream, delay_s)
            _Direction(upstream, client, delay_s)

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()  # the parent closes it (or dies): time to go


class DelayProxy:
    """A delay proxy process in front of ``target``; ``host``/``port`` is where to connect:
    ``listen_host`` and ``listen_port`` (0: a free one)."""

    def __init__(self, target_host: str, target_port: int, rtt_ms: float,
                 listen_host: str = "127.0.0.1", listen_port: int = 0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, target_host, str(target_port), str(rtt_ms), listen_host,
             str(listen_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the delay proxy did not start (it said {line!r})")
        self.host, self.port = listen_host, int(line)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
          sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1",
          int(sys.argv[5]) if len(sys.argv) > 5 else 0)
