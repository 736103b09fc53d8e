"""Property-based fuzzing of what comes from outside: every adapter's parser and the config loader.

Parsers: the recorded real payload, mutated (a leaf replaced by any JSON value, a key dropped, the document
replaced), served through an httpx transport. Every answer either becomes quotes whose value is exactly what the
payload says (in fractions), or is rejected with a SourceError or by the rates layer's `validate` (logged as
`quote_rejected`: not finite, out of range, stale), or (DefiLlama, a pool without the field) gives no
quote, which the rates layer logs as `yield_missing`: never another exception, never a silent wrong value.

Also the raw bodies (random bytes, the real payload cut short or with a byte flipped), the onchain adapter's
JSON-RPC answers (one of them mutated) and the snapshot adapter's file.

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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters import REGISTRY, Quote
from adapters.endpoints import NUMERIC, rejected_reasons
from adapters.errors import SourceError
from adapters.onchain import annualise
from aggregator.core.errors import ConfigError
from aggregator.rates.collect import validate
from aggregator.settings import load_settings
from tests.adapters.cases import FIXTURES, HTTP_CASES, Case, one_source_settings
from tests.adapters.test_contract import http_settings
from tests.adapters.test_faults import LENIENT

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
    return draw(mutated_doc(case.payload(), case.value_path))


@st.composite
def mutated_doc(draw: st.DrawFn, doc: Any, value_path: tuple[Any, ...] = ()) -> Any:
    """`doc` (a fresh copy) with a leaf replaced by any JSON value, a key dropped, or replaced whole."""
    doc = json.loads(json.dumps(doc))
    kind = draw(st.sampled_from(["replace", "replace_value", "drop", "whole"]))
    if kind == "whole":
        return draw(json_value)
    target = value_path if kind == "replace_value" and value_path else draw(st.sampled_from(paths(doc)))
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
    # a numeric string counts where the adapter reads one (adapters.endpoints.number)
    if isinstance(raw, str):
        if case.adapter not in LENIENT or not NUMERIC.match(raw):
            return None
        raw = float(raw)
    if not isinstance(raw, int | float):
        return None
    return float(raw) * (0.01 if case.unit == "percent" else 1.0)


def check_answer(case: Case, body: bytes, rates_settings: Any) -> None:
    """What the adapter makes of `body` is a SourceError, or what the body states (or a rates-layer rejection)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
        parses = False
    else:
        parses = True
    try:
        quotes = fetch(case, body)
    except SourceError:
        return
    assert parses, ("a body that is not JSON gave quotes", body[:80])
    expected = stated(case, doc)
    if not quotes:  # no value for the key: the rates layer logs `quote_rejected` and the venue is held
        reason = rejected_reasons(quotes).get(case.key, "")
        # a lenient adapter names the field it could not read: the value's, or the observation time's, or
        # (DefiLlama) another field of the pool's row
        assert case.adapter in LENIENT, (doc, reason)
        if case.adapter == "defillama":  # or the pool is no longer in the answer: then it states no value
            assert expected is None or f"pool {case.key}: field " in reason, (doc, reason)
        else:
            assert "field " in reason, (doc, reason)
            assert expected is None or any(t in reason for t in ("intervalTimestamp", "timeUnix")), (
                doc,
                reason,
            )
        return
    assert len(quotes) == 1 and quotes[0].key == case.key
    why = validate(quotes[0], rates_settings, NOW)
    if why is not None:  # the rates layer rejects it and logs `quote_rejected` with this reason
        assert why.strip()
        return
    value = quotes[0].value
    assert math.isfinite(value)
    assert expected is not None and value == pytest.approx(expected, rel=1e-12), (value, expected)


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.adapter for c in HTTP_CASES])
def test_parsers_give_what_the_payload_says_or_a_source_error(case: Case) -> None:
    rates_settings = one_source_settings(http_settings(case, "http://fuzz.invalid"), case.key)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=mutated(case))
    def check(doc: Any) -> None:
        # Python writes NaN/Infinity literals: hostile JSON on purpose
        check_answer(case, json.dumps(doc).encode(), rates_settings)

    check()


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.adapter for c in HTTP_CASES])
def test_parsers_on_random_and_truncated_bytes(case: Case) -> None:
    """Random bytes, and the real payload cut short or with a byte flipped: a SourceError, never a crash."""
    rates_settings = one_source_settings(http_settings(case, "http://fuzz.invalid"), case.key)
    real = (FIXTURES / case.fixture).read_bytes()

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["random", "truncated", "flipped"]))
        if kind == "random":
            return draw(st.binary(max_size=64))
        at = draw(st.integers(min_value=0, max_value=len(real) - 1))
        if kind == "truncated":
            return real[:at]
        return real[:at] + bytes([real[at] ^ draw(st.integers(min_value=1, max_value=255))]) + real[at + 1 :]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=damaged())
    def check(body: bytes) -> None:
        check_answer(case, body, rates_settings)

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
    path.write_text(
        "\n".join(text)
        .replace("../data/", f"{ROOT}/data/")
        .replace('"risk/scorecard.toml"', f'"{ROOT}/config/risk/scorecard.toml"')
    )
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        assert str(exc).strip()  # a message, never an empty error
        return
    assert loaded.universe().venues  # what loads is a consistent universe


CHAIN = json.loads((FIXTURES / "onchain" / "reth.reconstructed.json").read_text())
RPC_TARGETS = ["eth_blockNumber", "block latest", "block earlier", "call latest", "call earlier"]
hexish = st.one_of(
    st.text(alphabet="0123456789abcdefxX -", max_size=70).map(lambda t: "0x" + t),
    st.integers(min_value=0, max_value=2**256 - 1).map(lambda n: f"0x{n:064x}"),  # a well-formed word
    st.integers(min_value=0, max_value=2**64).map(hex),  # a well-formed block number or timestamp
)


def _honest_rpc(method: str, params: list[Any]) -> dict[str, Any]:
    """What an archive node answers from the recorded real rETH rates (null for an unknown block)."""
    if method == "eth_blockNumber":
        return {"result": CHAIN["latest_block"]}
    if method == "eth_getBlockByNumber":
        stamp = CHAIN["blocks"].get(params[0])
        return {"result": None if stamp is None else {"number": params[0], "timestamp": stamp}}
    key = f"{params[0]['to'].lower()}:{params[0]['data']}"
    return {"result": CHAIN["calls"].get(key, {}).get(params[1], "0x")}


def _target(method: str, params: list[Any]) -> str:
    if method == "eth_blockNumber":
        return method
    block = params[0] if method == "eth_getBlockByNumber" else params[1]
    which = "latest" if block == CHAIN["latest_block"] else "earlier"
    return f"{'block' if method == 'eth_getBlockByNumber' else 'call'} {which}"


def _word(value: Any) -> float:
    """The first 32-byte word of an eth_call result, as the 1e18-scaled rate it encodes."""
    return int(value[2:66], 16) / 1e18


def test_onchain_parser_on_mutated_json_rpc_answers() -> None:
    """One of the node's answers (the block number, a block, a rate call) mutated: its result replaced by any JSON
    value or a hex-looking string (a block's timestamp), its `result` key dropped, or the whole answer replaced. The adapter raises a
    SourceError, or its APR and APY are exactly those of the rates and block times the node answered."""
    rates_settings = one_source_settings({"adapter": "onchain", "rpc_url": "http://rpc.invalid"}, "reth")
    settings_ = REGISTRY["onchain"].settings_model.model_validate(
        {"adapter": "onchain", "rpc_url": "http://rpc.invalid/", "max_attempts": 1}
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        target=st.sampled_from(RPC_TARGETS),
        kind=st.sampled_from(["result", "hex", "drop", "whole"]),
        value=json_value,
        hex_value=hexish,
    )
    @example(
        target="block earlier", kind="hex", value=None, hex_value="0x66d10b00"
    )  # parses: a shorter window
    @example(target="call latest", kind="hex", value=None, hex_value="0x")  # empty: no contract then
    def check(target: str, kind: str, value: Any, hex_value: str) -> None:
        served: dict[str, Any] = {}

        def handler(request: httpx.Request) -> httpx.Response:
            call = json.loads(request.content)
            answer: Any = {"jsonrpc": "2.0", "id": call["id"], **_honest_rpc(call["method"], call["params"])}
            where = _target(call["method"], call["params"])
            if where == target:
                if kind == "whole":
                    answer = value
                elif kind == "drop":
                    del answer["result"]
                elif kind == "hex" and isinstance(answer["result"], dict):  # a block: its timestamp
                    answer["result"]["timestamp"] = hex_value
                else:
                    answer["result"] = hex_value if kind == "hex" else value
            if isinstance(answer, dict) and "result" in answer:
                served[where] = answer["result"]
            return httpx.Response(
                200, content=json.dumps(answer).encode(), headers={"content-type": "application/json"}
            )

        async def go() -> list[Quote]:
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
                return await REGISTRY["onchain"].fetch(
                    client, "src", settings_, ["reth", "reth/apy"], lambda: NOW
                )

        try:
            quotes = {q.key: q for q in asyncio.run(go())}
        except SourceError:
            return
        r1, r0 = _word(served["call latest"]), _word(served["call earlier"])
        t1 = int(served["block latest"]["timestamp"], 16)
        t0 = int(served["block earlier"]["timestamp"], 16)
        apr, apy = annualise(r0, r1, t1 - t0)
        assert set(quotes) == {"reth", "reth/apy"}
        assert quotes["reth"].value == apr and quotes["reth/apy"].value == apy
        assert quotes["reth"].observed_at == datetime.fromtimestamp(t1, tz=UTC)
        for q in quotes.values():  # what the rates layer makes of each: an infinite APY never passes
            why = validate(q, rates_settings, NOW)
            assert (why is not None and why.strip()) or math.isfinite(q.value)

    check()


def test_snapshot_parser_on_mutated_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The bundled demo snapshot with a leaf replaced, a key dropped, or replaced whole: the adapter raises a
    SourceError naming the file, or gives, for each key asked, exactly the values the file records for it."""
    original = json.loads((ROOT / "data" / "snapshots" / "demo-2026-09-14.json").read_text())
    keys = sorted({q["key"] for q in original["quotes"]})
    folder = tmp_path_factory.mktemp("snapshot-fuzz")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=mutated_doc(original, ("quotes", 0, "value")))
    @example(doc=original)
    def check(doc: Any) -> None:
        path = folder / "snapshot.json"
        path.write_text(json.dumps(doc))
        cfg = REGISTRY["snapshot"].settings_model.model_validate(
            {"adapter": "snapshot", "path": str(path), "replay": False}
        )

        async def go() -> list[Quote]:
            async with httpx.AsyncClient() as client:
                return await REGISTRY["snapshot"].fetch(client, "snap", cfg, keys, lambda: NOW)

        try:
            quotes = asyncio.run(go())
        except SourceError as exc:
            assert str(path) in str(exc)
            return
        recorded = [(q["key"], float(q["value"])) for q in doc["quotes"] if q["key"] in keys]
        assert [(q.key, q.value) for q in quotes] == recorded
        assert all(math.isfinite(q.value) for q in quotes)

    check()
