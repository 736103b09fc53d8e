"""One store per config (issue #16): a config that names no database gets its own file, named after it; a store
remembers the config that created it and refuses another, unless told to adopt it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from aggregator.core.errors import StoreOwnerError
from aggregator.settings import load_settings
from aggregator.store import Store
from tests.conftest import AGGREGATOR, copy_demo

URL_LINE = re.compile(r'^url = "sqlite:///[^"]*".*$', re.MULTILINE)


def _cli(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")} | (env or {})
    return subprocess.run(
        [AGGREGATOR, "rebalance", "--json", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=full,
    )


def _two_configs(tmp_path: Path, url_b: str | None = None) -> tuple[Path, Path]:
    """demo.toml and treasury.toml side by side in one folder, neither naming a database (or B naming `url_b`)."""
    demo = copy_demo(tmp_path, lambda t: URL_LINE.sub("", t))
    text = demo.read_text()
    assert "sqlite:///" not in text  # the edit removed the demo's own database line
    treasury = demo.with_name("treasury.toml")
    treasury.write_text(text if url_b is None else text.replace("[database]", f'[database]\nurl = "{url_b}"'))
    return demo, treasury


def test_two_configs_in_one_folder_never_share_a_store(tmp_path: Path) -> None:
    demo, treasury = _two_configs(tmp_path)
    a, b = load_settings(demo).database, load_settings(treasury).database
    assert a.url == f"sqlite:///{demo.parent / 'demo.sqlite'}"
    assert b.url == f"sqlite:///{treasury.parent / 'treasury.sqlite'}"
    assert (a.owner, b.owner) == ("demo", "treasury")
    for config in (demo, treasury):
        out = _cli(config)
        assert out.returncode == 0, out.stderr
    assert Store(a.url).owner() == "demo"
    assert Store(b.url).owner() == "treasury"
    assert len(Store(a.url).proposals(10)) == len(Store(b.url).proposals(10)) == 1


def test_a_config_pointed_at_another_configs_store_is_refused(tmp_path: Path) -> None:
    demo_store = tmp_path / "config" / "demo.sqlite"
    demo, treasury = _two_configs(tmp_path, url_b=f"sqlite:///{demo_store}")
    assert _cli(demo).returncode == 0
    refused = _cli(treasury)
    assert refused.returncode == 3, refused.stderr
    message = refused.stderr
    assert "'demo'" in message and "'treasury'" in message and str(demo_store) in message
    assert "adopt = true" in message and "AGGREGATOR_DATABASE__ADOPT=true" in message
    store = Store(f"sqlite:///{demo_store}")
    assert store.owner() == "demo"
    assert len(store.proposals(10)) == 1  # nothing of the refused run was written
    adopted = _cli(treasury, {"AGGREGATOR_DATABASE__ADOPT": "true"})
    assert adopted.returncode == 0, adopted.stderr
    assert store.owner() == "treasury"
    assert _cli(demo).returncode == 3  # and now the demo is the stranger


def test_the_store_refuses_another_owner_in_process(store_url: str) -> None:
    url = store_url
    Store(url, owner="alpha")
    Store(url, owner="alpha")  # the same config again: fine
    with pytest.raises(StoreOwnerError, match="belongs to config 'alpha', and this is config 'beta'"):
        Store(url, owner="beta")
    assert Store(url).owner() == "alpha"
