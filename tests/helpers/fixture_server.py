"""A real HTTP server on 127.0.0.1 that serves recorded payloads, with scripted faults, for adapter tests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


class FixtureServer:
    """Serves `routes[path]`: a list of replies used in order, the last one repeating. Counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.rpc: dict[str, Callable[[Any], Reply]] = {}  # path -> reply computed from the JSON request body
        self.hits: dict[str, int] = defaultdict(int)
        self.bodies: dict[str, list[bytes]] = defaultdict(list)  # POST bodies by path
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: bytes = b"") -> None:
                path = self.path.split("?")[0]
                replies = server.routes.get(path)
                n = server.hits[path]
                server.hits[path] += 1
                if path in server.rpc:
                    reply = server.rpc[path](json.loads(body))
                elif not replies:
                    self.send_error(404)
                    return
                else:
                    reply = replies[min(n, len(replies) - 1)]
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for k, v in reply.headers:
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(reply.body)

            def do_GET(self) -> None:
                self._reply()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                server.bodies[self.path.split("?")[0]].append(body)
                self._reply(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 makes concurrent clients wait on SYN retries

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FixtureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
