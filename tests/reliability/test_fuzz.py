"""Property-based fuzzing of what comes from outside: every adapter's parser and the config loader.

Parsers: the recorded real payload, mutated (a leaf replaced by any JSON value, a key dropped, the document
replaced), served through an httpx transport. Every answer either becomes quotes whose value is exactly what the
payload says (in fractions), or is rejected with a SourceError or by the rates layer's `validate` (logged as
`quote_rejected`: not finite, out of range, stale), or (DefiLlama, a pool without the field) gives no
quote, which the rates layer logs as `yield_missing`: never another exception, never a silent wrong value.

Config: the demo TOML with a value replaced or a line dropped. Every file either loads or raises ConfigError.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import REGISTRY, Quote
from adapters.errors import SourceError
from aggregator.errors import ConfigError
from aggregator.rates import validate
from aggregator.settings import load_settings
from tests.adapters.cases import HTTP_CASES, Case, one_source_settings
from tests.adapters.test_contract import http_settings

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["NaN", "Infinity", "-1", "1e309", "0x10", " 3.1 ", "3,1", "", "null"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:5]):
            out += paths(v, (*prefix, i))
    return out


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated(draw: st.DrawFn, case: Case) -> Any:
    doc = case.payload()
    kind = draw(st.sampled_from(["replace", "replace_value", "drop", "whole"]))
    if kind == "whole":
        return draw(json_value)
    if kind == "replace_value" and case.value_path:
        target = case.value_path
    else:
        target = draw(st.sampled_from(paths(doc)))
    if not target:
        return draw(json_value)
    parent = get(doc, target[:-1])
    if kind == "drop" and isinstance(parent, dict):
        del parent[target[-1]]
    else:
        parent[target[-1]] = draw(json_value)
    return doc


def fetch(case: Case, body: bytes) -> list[Quote]:
    impl = REGISTRY[case.adapter]
    cfg = impl.settings_model.model_validate(http_settings(case, "http://fuzz.invalid", max_attempts=1))

    async def go() -> list[Quote]:
        transport = httpx.MockTransport(
            lambda _req: httpx.Response(200, content=body, headers={"content-type": "application/json"})
        )
        async with httpx.AsyncClient(transport=transport) as client:
            return await impl.fetch(client, "src", cfg, [case.key], lambda: NOW)

    return asyncio.run(go())


def stated(case: Case, doc: Any) -> float | None:
    """The number the payload states at the case's value path, in fractions, or None if there is none."""
    try:
        raw = get(doc, case.value_path)
        if case.adapter == "defillama" and get(doc, (*case.value_path[:-1], "pool")) != case.key:
            return None  # the row no longer names the pool asked for: it is not the pool's value
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            return None
    if not isinstance(raw, int | float):
        return None
    return float(raw) * (0.01 if case.unit == "percent" else 1.0)


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.adapter for c in HTTP_CASES])
def test_parsers_give_what_the_payload_says_or_a_source_error(case: Case) -> None:
    rates_settings = one_source_settings(http_settings(case, "http://fuzz.invalid"), case.key)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=mutated(case))
    def check(doc: Any) -> None:
        body = json.dumps(doc).encode()  # Python writes NaN/Infinity literals: hostile JSON on purpose
        try:
            quotes = fetch(case, body)
        except SourceError:
            return
        expected = stated(case, doc)
        if not quotes:  # no value for the key: the rates layer logs `yield_missing` and holds the venue
            assert case.adapter == "defillama" and expected is None, doc
            return
        assert len(quotes) == 1 and quotes[0].key == case.key
        why = validate(quotes[0], rates_settings, NOW)
        if why is not None:  # the rates layer rejects it and logs `quote_rejected` with this reason
            assert why.strip()
            return
        value = quotes[0].value
        assert math.isfinite(value)
        assert expected is not None and value == pytest.approx(expected, rel=1e-12), (value, expected)

    check()


MUTATIONS = st.sampled_from(
    [
        "5",
        "-1",
        "0",
        "1e309",
        "nan",
        "inf",
        '"x"',
        '"0.5"',
        "[]",
        "{}",
        "true",
        '"15 * * * *"',
        "0.999",
        "100",
    ]
)


@settings(max_examples=150, deadline=None)
@given(line=st.integers(min_value=0, max_value=10_000), value=MUTATIONS, drop=st.booleans())
def test_config_loader_loads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, line: int, value: str, drop: bool
) -> None:
    text = (ROOT / "config" / "demo.toml").read_text().splitlines()
    assignments = [i for i, t in enumerate(text) if "=" in t and not t.lstrip().startswith("#")]
    i = assignments[line % len(assignments)]
    if drop:
        del text[i]
    else:
        key = text[i].split("=", 1)[0]
        text[i] = f"{key}= {value}"
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "config").mkdir()
    path = folder / "config" / "demo.toml"
    path.write_text("\n".join(text).replace("../data/", f"{ROOT}/data/"))
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        assert str(exc).strip()  # a message, never an empty error
        return
    assert loaded.universe().venues  # what loads is a consistent universe
