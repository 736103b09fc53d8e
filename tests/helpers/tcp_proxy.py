"""A TCP proxy on 127.0.0.1 that can black-hole its connections, to simulate a network partition (#18).

`cut()` stops forwarding without closing anything: the client's queries are accepted by the kernel and then wait,
as over a cut network (no reset, no error); new connections are accepted into the listen backlog and get no reply.
`heal()` forwards again, in order, whatever waited meanwhile (as TCP retransmission delivers it once the network is
back). One thread, selectors; stopped with `close()` (or as a context manager).
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

from tests.helpers.demo import free_port


class BlackHoleProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until `cut()`, and again after `heal()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.setblocking(False)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="black-hole-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._thread.join(timeout=10)
        for sock in {*self._peers, self._listener}:
            sock.close()

    def __enter__(self) -> BlackHoleProxy:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            while not self._closed.is_set():
                self._flowing.wait()
                for key, _ in sel.select(timeout=0.05):
                    if not self._flowing.is_set():
                        break  # cut mid-batch: forward nothing more
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept(sel)
                    elif sock in self._peers:
                        self._forward(sel, sock)

    def _accept(self, sel: selectors.BaseSelector) -> None:
        client, _ = self._listener.accept()
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            sel.register(sock, selectors.EVENT_READ)
        self._peers[client], self._peers[upstream] = upstream, client

    def _forward(self, sel: selectors.BaseSelector, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        for s in (sock, peer):  # one side closed: close the other, as the network would pass the FIN on
            sel.unregister(s)
            del self._peers[s]
            s.close()
