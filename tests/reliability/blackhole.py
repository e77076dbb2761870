"""A small TCP proxy for fault tests: it forwards to Redis until told to black-hole.

``freeze()`` makes the connections open now stop forwarding without closing (packets
"dropped": each side's writes succeed, nothing ever comes back), while new connections still
go through, which is what a connection that dies silently on the network looks like to
redis-py. ``freeze(new_too=True)`` also swallows new connections (the whole link is gone);
``thaw()`` lets new connections through again (frozen ones stay dead).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    upstream: socket.socket | None
    frozen: bool = False


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; a thread of its own, stopped by :meth:`close`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._swallow_new = False
        self._closed = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def freeze(self, *, new_too: bool = False) -> int:
        """Stop forwarding on every open connection (without closing it); returns how many."""
        with self._lock:
            for pair in self._pairs:
                pair.frozen = True
            self._swallow_new = new_too
            return len(self._pairs)

    def thaw(self) -> None:
        """New connections go through again; the frozen ones stay frozen."""
        with self._lock:
            self._swallow_new = False

    def close(self) -> None:
        self._closed = True
        self._thread.join(5)
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.upstream):
                    if sock is not None:
                        with contextlib.suppress(OSError):
                            sock.close()
        self._listener.close()
        self._selector.close()

    def _run(self) -> None:
        while not self._closed:
            for key, _ in self._selector.select(0.05):
                if key.data is None:
                    self._accept()
                else:
                    self._forward(*key.data)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            client, _ = self._listener.accept()
            self.accepted += 1
            with self._lock:
                if self._swallow_new:  # handshake done by the kernel, then nothing, ever
                    self._pairs.append(_Pair(client, None, frozen=True))
                    return
            upstream = socket.create_connection(self.target)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            self._selector.register(client, selectors.EVENT_READ, (client, upstream, pair))
            self._selector.register(upstream, selectors.EVENT_READ, (upstream, client, pair))

    def _forward(self, src: socket.socket, dst: socket.socket, pair: _Pair) -> None:
        if pair.frozen:  # leave the bytes in the kernel's buffers: nobody reads them
            for sock in (pair.client, pair.upstream):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
            return
        try:
            data = src.recv(65536)
            if data:
                dst.sendall(data)
                return
        except OSError:
            pass
        for sock in (pair.client, pair.upstream):  # one side closed: close both, like a real link
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
