"""A TCP proxy between the reader and the real server, for injecting faults: it forwards bytes
both ways until told to stall (hold every byte) or to cut (reset every connection).

Non-blocking both ways: what a peer cannot take yet waits in a per-direction buffer, and the
proxy stops reading from the sender while that buffer is full (back-pressure, as TCP itself).
"""

from __future__ import annotations

import selectors
import socket
import threading

_HIGH_WATER = 4 << 20  # bytes buffered towards one peer before its sender is paused


class _Pipe:
    """One direction: bytes read from ``source`` wait in ``pending`` until ``sink`` takes them."""

    def __init__(self, source: socket.socket, sink: socket.socket) -> None:
        self.source, self.sink = source, sink
        self.pending = bytearray()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server((listen_host, 0))
        self.host = listen_host
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._cut_requests: list[threading.Event] = []
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        self.listener.setblocking(False)
        selector.register(self.listener, selectors.EVENT_READ)
        pipes: dict[socket.socket, _Pipe] = {}  # by source
        into: dict[socket.socket, _Pipe] = {}  # by sink

        def interest(sock: socket.socket) -> int:
            events = 0
            if sock in pipes and len(pipes[sock].pending) < _HIGH_WATER:
                events |= selectors.EVENT_READ
            if sock in into and into[sock].pending:
                events |= selectors.EVENT_WRITE
            return events

        def update(sock: socket.socket) -> None:
            events = interest(sock)
            try:
                registered = sock in selector.get_map()
                if events and registered:
                    selector.modify(sock, events)
                elif events:
                    selector.register(sock, events)
                elif registered:
                    selector.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass

        def close(sock: socket.socket) -> None:
            pipe = pipes.get(sock) or into.get(sock)
            if pipe is None:
                return
            for s in (pipe.source, pipe.sink):
                pipes.pop(s, None)
                into.pop(s, None)
                try:
                    selector.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()

        while not self._closed.is_set():
            while self._cut_requests:
                for sock in list(pipes):  # linger 0, then close: the peers see a reset (RST)
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    except OSError:
                        pass
                    close(sock)
                with self._lock:
                    self._pairs.clear()
                self._cut_requests.pop().set()
            if self.stalled.is_set():
                self._closed.wait(0.05)  # hold every byte: the peers see silence
                continue
            for key, events in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock.fileno() == -1:  # closed with its pair earlier in this round
                    continue
                if sock is self.listener:
                    try:
                        client, _ = self.listener.accept()
                        upstream = socket.create_connection(self.target, timeout=5)
                    except OSError:
                        continue
                    for a, b in ((client, upstream), (upstream, client)):
                        a.setblocking(False)
                        pipe = _Pipe(a, b)
                        pipes[a], into[b] = pipe, pipe
                    for s in (client, upstream):
                        update(s)
                    with self._lock:
                        self._pairs.append((client, upstream))
                    continue
                try:
                    if events & selectors.EVENT_WRITE and sock in into:
                        pipe = into[sock]
                        sent = sock.send(pipe.pending)
                        del pipe.pending[:sent]
                        update(pipe.source)
                    if events & selectors.EVENT_READ and sock in pipes:
                        pipe = pipes[sock]
                        chunk = sock.recv(1 << 16)
                        if not chunk:
                            close(sock)
                            continue
                        pipe.pending += chunk
                        update(pipe.sink)
                    update(sock)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    close(sock)
        for sock in list(pipes):
            close(sock)
        selector.close()

    def cut(self) -> None:
        """Resets every open connection (as a crashed host would). Done by the proxy's own
        thread: a socket touched from two threads could be closed by one while the other
        shuts down whatever file the number has come to mean (another library's socket)."""
        done = threading.Event()
        self._cut_requests.append(done)
        if not done.wait(10):
            raise RuntimeError("the proxy did not cut its connections within 10 s")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.listener.close()
        with self._lock:
            for pair in self._pairs:
                for s in pair:
                    s.close()
