"""A TCP proxy between the reader and the real server, for injecting faults: it forwards bytes
both ways until told to stall (hold every byte) or to cut (reset every connection)."""

from __future__ import annotations

import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        self.listener.setblocking(False)
        selector.register(self.listener, selectors.EVENT_READ)
        while not self._closed.is_set():
            if self.stalled.is_set():
                self._closed.wait(0.05)  # hold every byte: the peers see silence
                continue
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target, timeout=5)
                    for a, b in ((client, upstream), (upstream, client)):
                        a.setblocking(False)
                        selector.register(a, selectors.EVENT_READ, b)
                    with self._lock:
                        self._pairs.append((client, upstream))
                    continue
                try:
                    chunk = sock.recv(1 << 16)  # type: ignore[union-attr]
                    if chunk:
                        key.data.sendall(chunk)
                        continue
                except OSError:
                    pass
                for s in (sock, key.data):
                    try:
                        selector.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()
        selector.close()

    def cut(self) -> None:
        """Resets every open connection (as a crashed host would)."""
        with self._lock:
            for pair in self._pairs:
                for s in pair:
                    try:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.listener.close()
        with self._lock:
            for pair in self._pairs:
                for s in pair:
                    s.close()
