"""Every numeric setting has a range, and the size of what the model accepts is bounded (issue 14, breaks 8, 14).

The walk covers the whole Settings model, nested sections, tuples and dict values included, so a numeric field
added anywhere without bounds fails here."""

from __future__ import annotations

import re
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from aggregator.core.errors import ConfigError
from aggregator.settings import MAX_NODES_PER_VENUE, MAX_RISK_NODES, Settings, load_settings
from tests.aggregator.test_cli import run

CONTAINERS = (tuple, list, dict, set, frozenset)


def _numeric_leaves(annotation: Any, metadata: list[Any], inside: bool) -> Iterator[tuple[list[Any], Any]]:
    """Each int/float reachable in `annotation`, with the constraints that apply to it: those of the Annotated
    wrappers on its way, and the field's own unless a container stands between (they constrain the container)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        found = [m for x in extra for m in (x.metadata if isinstance(x, FieldInfo) else [x])]
        yield from _numeric_leaves(inner, metadata + found, inside)
        return
    if origin is not None:
        nested = origin in CONTAINERS or (isinstance(origin, type) and issubclass(origin, CONTAINERS))
        args = typing.get_args(annotation)
        if origin is dict:
            args = args[1:]  # keys are names
        for arg in args:
            yield from _numeric_leaves(arg, [] if nested else metadata, inside or nested)
        return
    if annotation in (int, float):
        yield metadata, annotation
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield [], annotation  # a model: walked by the caller


def _unbounded(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[str]:
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        for meta, leaf in _numeric_leaves(field.annotation, list(field.metadata), False):
            if isinstance(leaf, type) and issubclass(leaf, BaseModel):
                yield from _unbounded(leaf, seen)
                continue
            low = any(getattr(m, "ge", None) is not None or getattr(m, "gt", None) is not None for m in meta)
            high = any(getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None for m in meta)
            if not (low and high):
                yield f"{model.__module__}.{model.__name__}.{name}"


def test_every_numeric_setting_has_a_lower_and_an_upper_bound() -> None:
    missing = sorted(set(_unbounded(Settings, set())))
    assert missing == [], f"numeric settings without a range (give them Field(ge/gt=…, le/lt=…)): {missing}"


def test_the_walk_finds_an_unbounded_field() -> None:
    """The walk itself can fail: a model with an unbounded number (nested in a dict of tuples) is reported."""

    class Inner(BaseModel):
        ok: float = 0.0  # no bounds

    class Outer(BaseModel):
        nested: dict[str, tuple[Inner, ...]] = {}

    assert list(_unbounded(Outer, set())) == [f"{__name__}.Inner.ok"]


def test_misfire_grace_past_its_range_is_refused_by_check_config(demo_config: Callable[..., Path]) -> None:
    config = demo_config(
        lambda t: re.sub(r"(?m)^misfire_grace_seconds = .*$", f"misfire_grace_seconds = {10**30}", t)
    )
    out = run("check-config", "--config", str(config))
    assert out.returncode == 3, out.stderr
    assert "schedule.misfire_grace_seconds" in out.stderr and "less than or equal to 86400" in out.stderr


def _many_nodes(count: int) -> Callable[[str], str]:
    """`count` extra risk nodes, all on the Lido venue."""

    def edit(text: str) -> str:
        nodes = "".join(f'\n[[risk_nodes]]\nid = "n{i}"\np = 0.0001\nlgd = 0.1\n' for i in range(count))
        names = ", ".join(f'"n{i}"' for i in range(count))
        old = 'name = "Lido stETH"\nrisk_nodes = ["lido"]'
        assert old in text
        return text.replace(old, f'name = "Lido stETH"\nrisk_nodes = ["lido", {names}]') + nodes

    return edit


def test_three_thousand_risk_nodes_on_one_venue_are_refused_at_load_with_the_limit_and_why(
    demo_config: Callable[..., Path],
) -> None:
    """Before: 150 s and 1.66 GB inside the optimizer. Now: refused at load, in well under a second."""
    config = demo_config(_many_nodes(3000))
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert f"at most {MAX_RISK_NODES}" in message and "n² growth" in message, message
    assert "venues[lido-steth].risk_nodes" in message and f"at most {MAX_NODES_PER_VENUE}" in message, message
    assert elapsed < 5.0  # generous under load; the point is seconds, not minutes


def test_a_benchmark_sized_universe_still_loads(tmp_path: Path) -> None:
    """1,000 venues and 200 risk nodes (the optimizer benchmark's largest universe) stay a valid config."""
    lines = [
        "[portfolio]\nholdings_eth = { eth = 100.0 }\n",
        '[sources.fixed]\nadapter = "static"\nvalues = { y = { value = 0.03, note = "test" } }\n',
        '[[venues]]\nid = "eth"\nkind = "idle"\n',
    ]
    lines += [f'[[risk_nodes]]\nid = "n{i}"\np = 0.0005\nlgd = 0.1\n' for i in range(200)]
    lines += [
        f'[[venues]]\nid = "v{i}"\nparent = "eth"\nkind = "liquid_staking"\nrisk_nodes = ["n{i % 200}"]\n'
        f'components = [{{ name = "base", quotes = [{{ source = "fixed", key = "y" }}] }}]\n'
        for i in range(999)
    ]
    path = tmp_path / "big.toml"
    path.write_text("\n".join(lines))
    settings = load_settings(path)
    assert len(settings.venues) == 1000 and len(settings.risk_nodes) == 200
