"""The daemon's API on a real uvicorn server on 127.0.0.1 for one test, with a client on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from pydantic import SecretStr

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import Settings
from tests.conftest import free_port


@contextmanager
def api_client(settings: Settings, token: str, *, timeout: float = 60) -> Iterator[httpx.Client]:
    """A service on `settings` behind the API with `token`, served until the block ends."""
    metrics = Metrics()
    server = ApiServer(
        create_app(Service(settings, metrics=metrics), metrics, SecretStr(token)), "127.0.0.1", free_port()
    )
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeout) as client:
            yield client
    finally:
        server.stop()
