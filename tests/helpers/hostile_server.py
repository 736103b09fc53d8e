"""A hostile HTTP server on 127.0.0.1: every request, whatever its path or method, gets the same misbehaviour.

Raw sockets, one thread per connection, so it can do what a well-behaved server library will not: drip a status
line, stream a body forever, send a gzip bomb. Each behaviour stops on its own after a bounded amount (`limit`), so
a client without a cap is hurt but the test machine is not taken down with it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator

BEHAVIOURS = ("nested", "huge", "declared_huge", "endless", "gzip_bomb", "slow_body", "slow_status")


class HostileServer:
    def __init__(self, behaviour: str, *, drip_seconds: float = 0.1, limit: int = 32 * 1024 * 1024) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; valid: {BEHAVIOURS}")
        self.behaviour = behaviour
        self.drip = drip_seconds
        self.limit = limit  # bytes sent (decompressed bytes for the bomb) before the server gives up
        self.requests = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            _read_request(conn)
            self.requests += 1
            for piece in self._pieces():
                if self.stop.is_set():
                    return
                conn.sendall(piece)

    def _pieces(self) -> Iterator[bytes]:
        json_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b = self.behaviour
        if b == "nested":
            depth = 30_000  # 60 KB, under the tests' 64 KiB cap (the break had 200 KB)
            body = b"[" * depth + b"]" * depth
            yield json_head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        elif b in ("huge", "declared_huge"):
            length = f"Content-Length: {self.limit}\r\n" if b == "declared_huge" else "Connection: close\r\n"
            yield json_head + length.encode() + b"\r\n["
            yield from _repeat(b"0," * 32768, self.limit)
        elif b == "endless":
            yield json_head + b"Transfer-Encoding: chunked\r\n\r\n"
            chunk = b"0," * 32768
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            yield from _repeat(framed, self.limit)
        elif b == "gzip_bomb":
            yield json_head + b"Content-Encoding: gzip\r\nConnection: close\r\n\r\n"
            gz = zlib.compressobj(9, zlib.DEFLATED, 31)
            yield gz.compress(b"[") + gz.flush(zlib.Z_FULL_FLUSH)
            # A full flush resets the compressor, so each 1 MiB of spaces compresses to the same ~1 KB: made once,
            # sent again and again (the server spends no CPU; the client decompresses 1,000 times what it reads).
            piece = gz.compress(b" " * (1024 * 1024)) + gz.flush(zlib.Z_FULL_FLUSH)
            for _ in range(self.limit // (1024 * 1024)):
                yield piece
            yield gz.compress(b"]") + gz.flush()
        elif b == "slow_body":
            yield json_head + b"Content-Length: 1000\r\n\r\n"
            yield from self._dribble(b'{"data": "' + b"x" * 980)
        elif b == "slow_status":
            yield from self._dribble(json_head + b"Content-Length: 2\r\n\r\n{}")

    def _dribble(self, data: bytes) -> Iterator[bytes]:
        for i in range(len(data)):
            yield data[i : i + 1]
            if self.stop.wait(self.drip):
                return


def _repeat(piece: bytes, limit: int) -> Iterator[bytes]:
    sent = 0
    while sent < limit:
        yield piece
        sent += len(piece)


def _read_request(conn: socket.socket) -> None:
    """Read the request line, headers and a Content-Length body (JSON-RPC POSTs), within a short time."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    deadline = time.monotonic() + 5
    while len(rest) < length and time.monotonic() < deadline:
        got = conn.recv(65536)
        if not got:
            return
        rest += got
