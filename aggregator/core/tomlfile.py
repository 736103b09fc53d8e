"""Reading an operator's TOML file (the config, the risk scorecard, a sweep grid) with the bounds no operator's file
needs to pass: a size cap, UTF-8, and a nesting limit checked without recursion. Every failure is a ConfigError
naming the file and what would be valid."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from aggregator.core.errors import ConfigError

MAX_NESTING = 32  # tables and arrays inside each other; the bundled files use 4


def read_toml(path: Path, *, what: str, hint: str, max_bytes: int, typical: str) -> dict[str, Any]:
    """The TOML table in `path`. `what` names the file in messages ("config file"), `hint` says how to point at
    another one, `typical` what size such a file has ("a config is a few KB")."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path} ({hint})") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{what} path is a directory, not a TOML file: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: larger than {max_bytes // 1024} KiB; {typical}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); save the file as UTF-8"
        ) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(
            f"{path}: nested too deeply (at most {MAX_NESTING} levels of tables and arrays)"
        ) from exc
    deep = too_deep(raw)
    if deep is not None:
        raise ConfigError(
            f"{path}: {deep or '(top level)'} is nested more than {MAX_NESTING} levels deep; "
            "no setting needs more than a few"
        )
    return raw


def too_deep(raw: dict[str, Any]) -> str | None:
    """The key of the first value nested past MAX_NESTING, or None (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        node, key, depth = stack.pop()
        if depth > MAX_NESTING:
            return key
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            if isinstance(v, dict | list):
                stack.append((v, f"{key}.{k}" if key else str(k), depth + 1))
    return None
