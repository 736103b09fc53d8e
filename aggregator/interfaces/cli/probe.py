"""`aggregator health`'s first step: the API's address read from the config file and the environment with the
standard library only, and one TCP connect to it. Nothing listening there (connection refused) is the answer at
once; loading the whole settings schema (pydantic, SQLAlchemy, the optimizer's types) took over a second before a
refused connection could be told. Anything this reader cannot be sure of returns None, and the caller loads the
settings as every other command does."""

from __future__ import annotations

import json
import os
import socket
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "api_address", "refused"]

# ApiSettings' defaults (tests/aggregator/test_health_probe.py checks that they agree).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
ENV = "AGGREGATOR_API"


def _env(name: str) -> str | None:
    """An environment variable by name, case-insensitive as the settings read it."""
    found = [v for k, v in os.environ.items() if k.upper() == name]
    return found[0] if len(found) == 1 else None


def api_address(config: Path) -> tuple[str, int] | None:
    """(host, port) to probe, as `load_settings` would resolve `[api]` (the environment over the file; an
    all-interfaces host probed on 127.0.0.1), or None when it cannot be told without the full loader."""
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    api: Any = raw.get("api", {})
    section = _env(ENV)
    if section is not None:
        try:
            api = json.loads(section)
        except ValueError:
            return None
    if not isinstance(api, dict):
        return None
    host: Any = _env(f"{ENV}__HOST") or api.get("host", DEFAULT_HOST)
    port: Any = _env(f"{ENV}__PORT") or api.get("port", DEFAULT_PORT)
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port)
    if (
        not isinstance(host, str)
        or not isinstance(port, int)
        or isinstance(port, bool)
        or not 0 < port < 65536
    ):
        return None
    return ("127.0.0.1" if host in ("0.0.0.0", "::") else host), port


def refused(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the address answers a TCP connect with a refusal (nothing listening); False when something
    accepts, or the connect fails otherwise (then the full check tells what is wrong)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
