"""The demo config as `Settings`, with sections overridden by value rather than by text edits of `demo.toml`:

    demo_settings(tmp_path, database={"url": f"sqlite:///{db}"}, limits={"min_improvement_bps": 9000.0})

Each keyword is a top-level table of the config; a dict is merged into the demo's table key by key (nested dicts
merged the same way), anything else replaces it. The result is validated exactly as `load_settings` validates a
file (relative paths resolved against the copied config's folder, environment overrides applied)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aggregator.settings import Settings, _read_toml, settings_from_raw
from tests.helpers.demo import copy_demo


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` merged in: dicts key by key, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def demo_settings(home: Path, **sections: Any) -> Settings:
    """The demo config (copied under `home` with the data it reads) with `sections` merged in."""
    path = copy_demo(home)
    return settings_from_raw(merged(_read_toml(path), sections), path)
