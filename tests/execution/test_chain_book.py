"""The book from chain (issue #16): a local JSON-RPC server on 127.0.0.1 answers the calls for a treasury holding
ETH, stETH, wstETH, rETH, cbETH, wBETH, weETH, ezETH, rsETH, an EigenLayer stETH deposit, two Lido withdrawal
requests (one pending, one claimed) and two queued EigenLayer withdrawals (stETH strategy, rETH strategy).
The answers are built here word by word (synthetic values, not recorded from mainnet), and the server answers
only the exact calldata the test expects, so the calls are checked too."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from structlog.testing import capture_logs

from aggregator.core.errors import SourceDataError
from aggregator.service import Service, flight_kind
from aggregator.service.chain import read_book
from aggregator.service.reconcile import reconcile
from aggregator.settings import Settings, load_settings
from aggregator.store.ledger import Pending, Position
from execution.calls import (
    CBETH,
    EIGEN_DELEGATION_MANAGER,
    EIGEN_STETH_STRATEGY,
    EIGEN_STRATEGY_MANAGER,
    EZETH,
    EZETH_RATE_PROVIDER,
    KELP_ORACLE,
    LIDO_WITHDRAWAL_QUEUE,
    RETH,
    ROCKET_STORAGE,
    RSETH,
    STETH,
    WBETH,
    WEETH,
    WSTETH,
)
from optimizer import InFlight
from tests.conftest import AGGREGATOR, copy_demo
from tests.fixture_server import FixtureServer, Reply
from tests.helpers.settings import demo_settings

TREASURY = "0x2222222222222222222222222222222222222222"
BLOCK = 0x1588A00
DEPOSIT_POOL = "0xDD3f50F8A6CafbE9b31a427582963f465E745AF8"  # what RocketStorage answers here
E18 = 10**18
RETH_STRATEGY = "0x1BeE69b7dFFfA4E2d53C2a2Df135C388AD25dCD2"
DELAY = 100_800  # minWithdrawalDelayBlocks(): 14 days of 12 s blocks


def k256(data: bytes) -> str:
    h = pycryptodome_keccak.new(digest_bits=256)
    h.update(data)
    return h.hexdigest()


def sel(signature: str) -> str:
    return "0x" + k256(signature.encode())[:8]


def word(n: int) -> str:
    return f"{n:064x}"


def addr(a: str) -> str:
    return a.lower().removeprefix("0x").rjust(64, "0")


def status(steth: int, finalized: bool, claimed: bool, at: int = 1_700_000_000) -> str:
    return word(steth) + word(steth) + addr(TREASURY) + word(at) + word(finalized) + word(claimed)


def queued(withdrawals: list[tuple[int, int, list[tuple[str, int]]]]) -> str:
    """getQueuedWithdrawals' answer written out word by word: (Withdrawal[] withdrawals, uint256[][] shares), each
    withdrawal (staker, delegatedTo, withdrawer, nonce, startBlock, strategies, scaledShares) given as (nonce,
    startBlock, [(strategy, shares)]); the scaled shares are the shares here."""

    def array(items: list[str]) -> str:
        return word(len(items)) + "".join(items)

    def dynamic(parts: list[str]) -> str:  # an array of dynamic items: offsets, then the items
        offsets, at = [], 32 * len(parts)
        for part in parts:
            offsets.append(word(at))
            at += len(part) // 2
        return word(len(parts)) + "".join(offsets) + "".join(parts)

    tuples = []
    for nonce, start, legs in withdrawals:
        strategies = array([addr(s) for s, _ in legs])
        shares = array([word(n) for _, n in legs])
        head = addr(TREASURY) + addr("0x" + "0" * 40) + addr(TREASURY) + word(nonce) + word(start)
        tuples.append(head + word(7 * 32) + word(7 * 32 + len(strategies) // 2) + strategies + shares)
    first = dynamic(tuples)
    second = dynamic([array([word(n) for _, n in legs]) for _, _, legs in withdrawals])
    return "0x" + word(0x40) + word(0x40 + len(first) // 2) + first + second


RATE_TOKENS = {  # token, rate contract, rate call (selector from docs/execution.md), balance, rate
    "coinbase-cbeth": (CBETH, CBETH, "0x3ba0b9a9", 4 * E18, 108 * E18 // 100),
    "binance-wbeth": (WBETH, WBETH, "0x3ba0b9a9", 3 * E18, 105 * E18 // 100),
    "etherfi-weeth": (WEETH, WEETH, "0x679aefce", 2 * E18, 106 * E18 // 100),
    "renzo-ezeth": (EZETH, EZETH_RATE_PROVIDER, "0x679aefce", 5 * E18, 102 * E18 // 100),
    "kelp-rseth": (RSETH, KELP_ORACLE, "0xb4b46434", 1 * E18, 103 * E18 // 100),
}

ANSWERS = {
    **{
        (token, sel("balanceOf(address)") + addr(TREASURY)): "0x" + word(b)
        for token, _, _, b, _ in RATE_TOKENS.values()
    },
    **{(contract, selector): "0x" + word(r) for _, contract, selector, _, r in RATE_TOKENS.values()},
    (EIGEN_DELEGATION_MANAGER, sel("minWithdrawalDelayBlocks()")): "0x" + word(DELAY),
    (EIGEN_DELEGATION_MANAGER, sel("getQueuedWithdrawals(address)") + addr(TREASURY)): queued(
        [(3, BLOCK - 50_400, [(EIGEN_STETH_STRATEGY, 10 * E18)]), (4, BLOCK - 1, [(RETH_STRATEGY, 2 * E18)])]
    ),
    (STETH, sel("balanceOf(address)") + addr(TREASURY)): "0x" + word(100 * E18),
    (WSTETH, sel("balanceOf(address)") + addr(TREASURY)): "0x" + word(50 * E18),
    (WSTETH, sel("stEthPerToken()")): "0x" + word(12 * E18 // 10),
    (RETH, sel("balanceOf(address)") + addr(TREASURY)): "0x" + word(10 * E18),
    (RETH, sel("getExchangeRate()")): "0x" + word(11 * E18 // 10),
    (
        EIGEN_STRATEGY_MANAGER,
        sel("stakerDepositShares(address,address)") + addr(TREASURY) + addr(EIGEN_STETH_STRATEGY),
    ): "0x" + word(30 * E18),
    (EIGEN_STETH_STRATEGY, sel("sharesToUnderlyingView(uint256)") + word(E18)): "0x" + word(105 * E18 // 100),
    (ROCKET_STORAGE, sel("getAddress(bytes32)") + k256(b"contract.addressrocketDepositPool")): "0x"
    + addr(DEPOSIT_POOL),
    (EIGEN_STETH_STRATEGY, sel("sharesToUnderlyingView(uint256)") + word(30 * E18)): "0x"
    + word(315 * E18 // 10),
    (LIDO_WITHDRAWAL_QUEUE, sel("getWithdrawalRequests(address)") + addr(TREASURY)): "0x"
    + word(0x20)
    + word(2)
    + word(7)
    + word(9),
    (
        LIDO_WITHDRAWAL_QUEUE,
        sel("getWithdrawalStatus(uint256[])") + word(0x20) + word(2) + word(7) + word(9),
    ): "0x"
    + word(0x20)
    + word(2)
    + status(20 * E18, finalized=False, claimed=False)
    + status(5 * E18, finalized=True, claimed=True),
}


class Chain:
    def __init__(self) -> None:
        self.answers = {(to.lower(), data): result for (to, data), result in ANSWERS.items()}
        self.blocks: list[str] = []
        self.drop: set[str] = set()
        self.balance = 125 * E18 // 10

    def __call__(self, body: Any) -> Reply:
        out = []
        for req in body:
            method, params = req["method"], req["params"]
            if method == "eth_blockNumber":
                result: object = hex(BLOCK)
            elif method == "eth_getBalance":
                assert params[0] == TREASURY
                self.blocks.append(params[1])
                result = hex(self.balance)
            else:
                call, block = params
                self.blocks.append(block)
                key = (call["to"].lower(), call["data"])
                if key not in self.answers:
                    out.append(
                        {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32000, "message": "revert"}}
                    )
                    continue
                result = self.answers[key]
                if call["data"][:10] in self.drop:
                    continue
            out.append({"jsonrpc": "2.0", "id": req["id"], "result": result})
        return Reply(json.dumps(out).encode())


@pytest.fixture
def chain() -> Iterator[tuple[FixtureServer, Chain]]:
    server, answers = FixtureServer(), Chain()
    server.rpc["/rpc"] = answers
    with server:
        yield server, answers


def test_the_book_read_matches_hand_computed_eth_values(chain: tuple[FixtureServer, Chain]) -> None:
    server, answers = chain
    book = read_book(f"{server.url}/rpc", TREASURY)
    assert book.block == BLOCK
    assert set(answers.blocks) == {hex(BLOCK)}  # every call at the one block
    assert book.holdings_eth() == pytest.approx(
        {
            "eth": 12.5,
            "lido-steth": 100 + 50 * 1.2,
            "rocketpool-reth": 11.0,
            "eigenlayer-steth": 31.5,
            "coinbase-cbeth": 4 * 1.08,
            "binance-wbeth": 3 * 1.05,
            "etherfi-weeth": 2 * 1.06,
            "renzo-ezeth": 5 * 1.02,
            "kelp-rseth": 1 * 1.03,
        }
    )
    tokens = {p.token: p.tokens for p in book.positions}
    assert tokens["cbETH"] == 4 and tokens["rsETH"] == 1
    assert book.rates == pytest.approx({"rocketpool-reth": 1.1, "eigenlayer-steth": 1.05, "kelp-rseth": 1.03})
    assert {k: v.lower() for k, v in book.resolved.items()} == {"rocketDepositPool": DEPOSIT_POOL.lower()}
    lido, eigen = book.pending  # request 9 is claimed: no longer in flight
    assert (lido.request_id, lido.eth, lido.finalized) == (7, 20.0, False)
    # 10 stETH-strategy shares at 1.05, queued 50,400 blocks ago with a 100,800-block delay: 7 days left
    assert (eigen.from_venue, eigen.to_venue, eigen.nonce) == ("eigenlayer-steth", "lido-steth", 3)
    assert eigen.eth == pytest.approx(10.5)
    assert (eigen.due_block, eigen.finalized) == (BLOCK + 50_400, False)
    assert eigen.days_left == pytest.approx(7.0)
    [unvalued] = book.unvalued  # the rETH strategy's withdrawal is named, not guessed
    assert "nonce 4" in unvalued and RETH_STRATEGY in unvalued
    assert server.hits["/rpc"] == 3  # the block number, then two batches


def test_a_malformed_answer_is_a_clear_error_and_no_book(chain: tuple[FixtureServer, Chain]) -> None:
    server, answers = chain
    answers.answers[(RETH.lower(), sel("getExchangeRate()"))] = "0x1234"
    with pytest.raises(SourceDataError, match=r"eth_per_reth .*does not decode as uint256"):
        read_book(f"{server.url}/rpc", TREASURY)


def test_a_missing_answer_is_a_clear_error(chain: tuple[FixtureServer, Chain]) -> None:
    server, answers = chain
    answers.drop.add(sel("stEthPerToken()"))
    with pytest.raises(SourceDataError, match=r"eth_call \(batch id \d+\): no answer in the batch"):
        read_book(f"{server.url}/rpc", TREASURY)


def test_aggregator_book_prints_the_treasury_positions(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    server, _ = chain
    config = copy_demo(
        tmp_path,
        lambda t: t.replace(
            "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
        ),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    out = subprocess.run(
        [AGGREGATOR, "book", "--json", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["source"] == f"chain at block {BLOCK}"
    assert doc["holdings_eth"]["lido-steth"] == pytest.approx(160.0)
    assert doc["in_flight"][0]["eth"] == pytest.approx(20.0)


def test_a_cycle_plans_from_the_chain_book_and_logs_the_drift(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    """The demo config expects 10,000 ETH (1,000 idle, 5,000 stETH, 4,000 in EigenLayer); the chain holds the
    treasury above: the plan starts from the chain, and `book_drift` names each difference."""
    server, _ = chain
    config = copy_demo(
        tmp_path,
        lambda t: t.replace(
            "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
        ),
    )
    service = Service(load_settings(config))
    with capture_logs() as logs:
        plan = service.rebalance("cli").plan
    # settled 250.72 ETH on chain plus the 20 ETH pending Lido request and the 10.5 stETH EigenLayer withdrawal
    lrts = 4 * 1.08 + 3 * 1.05 + 2 * 1.06 + 5 * 1.02 + 1.03
    assert plan.portfolio_eth == pytest.approx(12.5 + 160 + 11 + 31.5 + lrts + 20 + 10.5)
    [drift] = [e for e in logs if e["event"] == "book_drift"]
    assert drift["venues"]["eth"] == {"expected": 1000.0, "chain": 12.5}
    assert drift["venues"]["rocketpool-reth"] == {"expected": 0.0, "chain": 11.0}
    assert drift["venues"]["coinbase-cbeth"]["chain"] == pytest.approx(4.32)
    assert drift["in_flight_chain_eth"] == pytest.approx(30.5)


def test_a_deposit_waiting_for_its_exits_is_not_drift(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    """An applied plan's deposit that waits for its exits to land is, in the expected book, a flight from idle ETH
    to rETH; on chain it is still idle ETH with no request. That is the book as expected, not `book_drift`."""
    server, _ = chain
    config = copy_demo(
        tmp_path,
        lambda t: t.replace(
            "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
        ),
    )
    settings = load_settings(config)
    service = Service(settings)
    read = service.chain_position(settings, {}, ())
    assert read is not None
    held, flights = read
    waiting = InFlight(from_venue="eth", to_venue="rocketpool-reth", amount_eth=5.0, days_left=3.0)
    expected = {**held, "eth": held["eth"] - 5.0}
    with capture_logs() as logs:
        service.chain_position(settings, expected, (*flights, waiting))
    assert not [e for e in logs if e["event"] == "book_drift"]
    with capture_logs() as logs:  # the same 5 ETH gone from idle ETH with no deposit waiting IS drift
        service.chain_position(settings, expected, flights)
    [drift] = [e for e in logs if e["event"] == "book_drift"]
    assert drift["venues"]["eth"]["chain"] == pytest.approx(held["eth"])


def test_a_failed_chain_read_keeps_the_expected_book(tmp_path: Path) -> None:
    config = copy_demo(
        tmp_path,
        lambda t: t.replace(
            "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "http://127.0.0.1:9/rpc"\n', 1
        ),
    )
    service = Service(load_settings(config))
    with capture_logs() as logs:
        plan = service.rebalance("cli").plan
    assert plan.portfolio_eth == pytest.approx(10_000.0)
    assert any(e["event"] == "chain_book_unavailable" for e in logs)


def test_safe_batch_takes_rates_and_the_deposit_pool_from_chain(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    server, _ = chain
    config = copy_demo(
        tmp_path,
        lambda t: t.replace(
            "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
        ),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    out_dir = tmp_path / "b"
    done = subprocess.run(
        [AGGREGATOR, "rebalance", "--config", str(config), "--safe-batch", str(out_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    [summary_file] = out_dir.glob("*-summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["safe"].lower() == TREASURY
    assert summary["rates"] == pytest.approx(
        {"rocketpool-reth": 1.1, "eigenlayer-steth": 1.05, "kelp-rseth": 1.03}
    )
    calls = [c for d in summary["days"] for c in d["calls"]]
    manual = [m["why"] for d in summary["days"] for m in d["manual"]]
    assert not any("none was given" in why or "was not resolved" in why for why in manual)
    # this plan buys rETH: the deposit goes to the pool RocketStorage named, encoded, not left manual
    assert ("deposit()", DEPOSIT_POOL) in [(c["function"], c["to"]) for c in calls]


def test_a_malformed_queued_withdrawals_answer_is_a_clear_error(chain: tuple[FixtureServer, Chain]) -> None:
    server, answers = chain
    key = (EIGEN_DELEGATION_MANAGER.lower(), sel("getQueuedWithdrawals(address)") + addr(TREASURY))
    answers.answers[key] = "0x" + word(0x40)  # cut short after the first offset
    with pytest.raises(SourceDataError, match=r"eigen_queued .*does not decode as \(address,address"):
        read_book(f"{server.url}/rpc", TREASURY)
    # no withdrawal but one (empty) share list: decodes, but does not add up
    answers.answers[key] = "0x" + word(0x40) + word(0x60) + word(0) + word(1) + word(0x20) + word(0)
    with pytest.raises(SourceDataError, match=r"eigen_queued .*0 withdrawals with 1 share lists"):
        read_book(f"{server.url}/rpc", TREASURY)


def test_a_missing_rate_of_a_restaking_token_is_a_clear_error(chain: tuple[FixtureServer, Chain]) -> None:
    server, answers = chain
    answers.drop.add(sel("rsETHPrice()"))
    with pytest.raises(SourceDataError, match=r"eth_call \(batch id \d+\): no answer in the batch"):
        read_book(f"{server.url}/rpc", TREASURY)


def test_an_implausible_rate_is_a_clear_error(chain: tuple[FixtureServer, Chain]) -> None:
    """An oracle answering 0 would value the venue at nothing and the plan would buy it back: refused."""
    server, answers = chain
    answers.answers[(CBETH.lower(), sel("exchangeRate()"))] = "0x" + word(0)
    with pytest.raises(SourceDataError, match=r"rate:coinbase-cbeth: rate 0 is outside 0.5–2"):
        read_book(f"{server.url}/rpc", TREASURY)


T0 = datetime(2026, 9, 14, 12, 0, tzinfo=UTC)


def wei(eth: float) -> int:
    return round(eth * E18)


def hold(
    chain: Chain,
    settled: dict[str, float],
    lido: Sequence[tuple[float, bool, bool]] = (),
    eigen: Sequence[float] = (),
) -> None:
    """The treasury on chain: `settled` ETH per venue the reader covers, Lido withdrawal requests `lido` (ETH,
    finalised, claimed) made at T0, and EigenLayer stETH-strategy withdrawals `eigen` (ETH) queued a day before
    BLOCK."""

    def put(to: str, data: str, value: str) -> None:
        chain.answers[(to.lower(), data)] = "0x" + value

    def balance(token: str, tokens: float) -> None:
        put(token, sel("balanceOf(address)") + addr(TREASURY), word(wei(tokens)))

    chain.balance = wei(settled.get("eth", 0.0))
    balance(STETH, settled.get("lido-steth", 0.0))
    balance(WSTETH, 0.0)
    balance(RETH, settled.get("rocketpool-reth", 0.0) / 1.1)
    for venue, (token, _, _, _, rate) in RATE_TOKENS.items():
        balance(token, settled.get(venue, 0.0) / (rate / E18))
    shares = wei(settled.get("eigenlayer-steth", 0.0) / 1.05)
    put(
        EIGEN_STRATEGY_MANAGER,
        sel("stakerDepositShares(address,address)") + addr(TREASURY) + addr(EIGEN_STETH_STRATEGY),
        word(shares),
    )
    put(
        EIGEN_STETH_STRATEGY,
        sel("sharesToUnderlyingView(uint256)") + word(shares),
        word(wei(settled.get("eigenlayer-steth", 0.0))),
    )
    ids = [100 + k for k in range(len(lido))]
    listed = word(0x20) + word(len(ids)) + "".join(word(i) for i in ids)
    put(LIDO_WITHDRAWAL_QUEUE, sel("getWithdrawalRequests(address)") + addr(TREASURY), listed)
    put(
        LIDO_WITHDRAWAL_QUEUE,
        sel("getWithdrawalStatus(uint256[])") + listed,
        word(0x20)
        + word(len(ids))
        + "".join(status(wei(eth), fin, claimed, int(T0.timestamp())) for eth, fin, claimed in lido),
    )
    put(
        EIGEN_DELEGATION_MANAGER,
        sel("getQueuedWithdrawals(address)") + addr(TREASURY),
        queued(
            [
                (10 + k, BLOCK - 7_200, [(EIGEN_STETH_STRATEGY, wei(eth / 1.05))])
                for k, eth in enumerate(eigen)
            ]
        )[2:],
    )


def applied_rotation(tmp_path: Path, server: FixtureServer) -> tuple[Settings, Service, Position]:
    """The demo (at most all of the book moved) applied once at T0 in store mode: a rotation whose deposits wait
    for its Lido exit, one of them spending that exit's proceeds. Returns the same config reading the book on chain
    (and its service, a day later) and the store's position."""
    db = {"url": f"sqlite:///{tmp_path / 'book.sqlite'}"}
    limits = {"max_turnover": 1.0}
    store_mode = Service(demo_settings(tmp_path / "store", database=db, limits=limits), now=lambda: T0)
    plan = store_mode.rebalance("cli", apply=True).plan
    position = store_mode.store.position()
    assert position is not None, plan.reason
    kinds = {flight_kind(store_mode.settings, p.from_venue, p.to_venue) for p in position.pending}
    assert kinds == {"deposit", "exit"}, position
    assert any(p.from_venue == "lido-steth" and p.to_venue != "eth" for p in position.pending), position
    portfolio = {"address": TREASURY, "rpc_url": f"{server.url}/rpc"}
    settings = demo_settings(tmp_path / "chain", database=db, limits=limits, portfolio=portfolio)
    return settings, Service(settings, now=lambda: T0 + timedelta(days=1)), position


def on_chain(settings: Settings, position: Position) -> dict[str, float]:
    """What the chain holds settled once the plan's exits are requested and its deposits wait: the settled book,
    with each waiting deposit still where it waits."""
    held = dict(position.settled)
    for p in position.pending:
        if flight_kind(settings, p.from_venue, p.to_venue) == "deposit":
            held[p.from_venue] = held.get(p.from_venue, 0.0) + p.amount_eth
        else:
            assert p.from_venue in {"lido-steth", "eigenlayer-steth"}, (
                p
            )  # what the chain reader sees in flight
    return held


def lido_exits(position: Position) -> list[Pending]:
    return [p for p in position.pending if p.from_venue == "lido-steth"]


def test_a_waiting_deposit_is_not_proposed_again_while_the_book_is_read_on_chain(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    """After an applied rotation the chain shows the waiting deposits as idle ETH and the exit as a Lido request
    (headed for idle ETH). Two cycles reading that book see the store's flights where the store heads them: neither
    proposes the deposits again (before: the optimizer saw the capital idle with nothing headed to rETH and bought
    it a second time), nothing is drift, and the store's book stays headed where the first plan aimed."""
    server, answers = chain
    settings, service, position = applied_rotation(tmp_path, server)
    eigen = [p.amount_eth for p in position.pending if p.from_venue == "eigenlayer-steth"]
    hold(
        answers,
        on_chain(settings, position),
        [(p.amount_eth, False, False) for p in lido_exits(position)],
        eigen,
    )
    waiting = {p.to_venue for p in position.pending if p.to_venue not in {"eth", "lido-steth"}}
    clock = {"now": T0}
    service.now = lambda: clock["now"]
    for day in (1, 2):
        clock["now"] = T0 + timedelta(days=day)
        with capture_logs() as logs:
            plan = service.rebalance("cli", apply=True).plan
        assert not [e for e in logs if e["event"] == "book_drift"], logs
        assert not [m for m in plan.moves if m.to_venue in waiting], plan.moves
        assert plan.status == "hold" and plan.moves == [], plan.reason
        after = service.store.position()
        assert after is not None and after.headed() == pytest.approx(position.headed())
        assert after.pending == position.pending
    inputs = plan.problem.inputs
    headed = {
        v: inputs.holdings_eth.get(v, 0.0) + sum(f.amount_eth for f in inputs.in_flight if f.to_venue == v)
        for v in position.headed()
    }
    assert headed == pytest.approx(position.headed(), abs=1e-6)  # the optimizer sees the store's destinations


def test_an_exit_claimed_before_the_release_is_not_drift_but_missing_capital_is(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    """The Lido exit whose proceeds buy rETH is claimed on day 3, before the release: the chain shows idle ETH and
    no request. That is the capital waiting for the release (no `book_drift`; the optimizer sees it headed for
    rETH). Idle ETH short of it, or the request gone with the stETH still in Lido, is drift."""
    server, answers = chain
    settings, service, position = applied_rotation(tmp_path, server)
    service.now = lambda: T0 + timedelta(days=3)
    spent = sum(p.amount_eth for p in lido_exits(position) if p.to_venue != "eth")
    plain = [(p.amount_eth, False, False) for p in lido_exits(position) if p.to_venue == "eth"]
    eigen = [p.amount_eth for p in position.pending if p.from_venue == "eigenlayer-steth"]
    held = on_chain(settings, position)

    def read(settled: dict[str, float], lido: list[tuple[float, bool, bool]]) -> tuple[list[Any], Any]:
        hold(answers, settled, lido, eigen)
        with capture_logs() as logs:
            out = service.chain_position(settings, service.holdings(), service.in_flight())
        assert out is not None
        return [e for e in logs if e["event"] == "book_drift"], out

    claimed = {**held, "eth": held.get("eth", 0.0) + spent}
    drift, (holdings, flights) = read(claimed, [*plain, (spent, True, True)])
    assert drift == []
    assert sum(f.amount_eth for f in flights if f.to_venue == "rocketpool-reth") == pytest.approx(
        position.headed()["rocketpool-reth"]
    )
    assert sum(holdings.values()) + sum(f.amount_eth for f in flights) == pytest.approx(sum(claimed.values()))
    plan = service.rebalance("cli").plan
    assert not [m for m in plan.moves if m.to_venue == "rocketpool-reth"], plan.moves

    short = {**claimed, "eth": claimed["eth"] - 100.0}  # 100 ETH of the claim is not there
    [drift], _ = read(short, [*plain, (spent, True, True)])
    assert drift["in_flight_expected_eth"] - drift["in_flight_chain_eth"] == pytest.approx(100.0, abs=0.01)

    never = {**held, "lido-steth": held["lido-steth"] + spent}  # no request, the stETH still in Lido
    [drift], _ = read(never, plain)
    assert drift["venues"]["lido-steth"]["chain"] - drift["venues"]["lido-steth"][
        "expected"
    ] == pytest.approx(spent, abs=0.01)
    assert drift["in_flight_expected_eth"] - drift["in_flight_chain_eth"] == pytest.approx(spent, abs=0.01)


def test_waiting_deposits_the_chain_cannot_fund_are_drift_and_not_given_to_the_optimizer(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    """Idle ETH gone from the chain while deposits wait on it: `book_drift` names the unfunded part, and the
    optimizer gets only what the chain holds (settled plus in flight is the chain's total)."""
    server, answers = chain
    settings, service, position = applied_rotation(tmp_path, server)
    held = on_chain(settings, position)
    waiting = sum(p.amount_eth for p in position.pending if p.from_venue == "eth")
    eigen = [p.amount_eth for p in position.pending if p.from_venue == "eigenlayer-steth"]
    hold(
        answers,
        {**held, "eth": held["eth"] - waiting + 50.0},
        [(p.amount_eth, False, False) for p in lido_exits(position)],
        eigen,
    )
    with capture_logs() as logs:
        out = service.chain_position(settings, service.holdings(), service.in_flight())
    assert out is not None
    holdings, flights = out
    [drift] = [e for e in logs if e["event"] == "book_drift"]
    assert drift["waiting_unfunded_eth"] == {"eth": pytest.approx(waiting - 50.0, abs=0.01)}
    assert sum(f.amount_eth for f in flights if f.from_venue == "eth") == pytest.approx(50.0)
    total = (
        sum(held.values())
        - waiting
        + 50.0
        + sum(p.amount_eth for p in position.pending if p.from_venue != "eth")
    )
    assert sum(holdings.values()) + sum(f.amount_eth for f in flights) == pytest.approx(total)


TREE: dict[str, str | None] = {
    "eth": None,
    "lido-steth": "eth",
    "eigenlayer-steth": "lido-steth",
    "symbiotic-steth": "lido-steth",
}


def fly(frm: str, to: str, eth: float, days: float) -> InFlight:
    return InFlight(from_venue=frm, to_venue=to, amount_eth=eth, days_left=days)


def test_a_request_that_is_one_leg_of_a_chain_of_exits_is_headed_where_the_store_heads_it() -> None:
    """stETH queued out of EigenLayer and then out of Lido (the store: one flight to ETH, 18 days): on chain the
    first leg is an EigenLayer withdrawal to stETH; the optimizer sees it headed for ETH and waiting the longer."""
    store = (fly("eigenlayer-steth", "eth", 100.0, 18.0),)
    chain = (fly("eigenlayer-steth", "lido-steth", 100.0, 13.0),)
    match = reconcile(TREE, {"lido-steth": 50.0}, store, {"lido-steth": 50.0}, chain, covered=frozenset(TREE))
    assert match.flights == (fly("eigenlayer-steth", "eth", 100.0, 18.0),)
    assert match.expected_flights == store and match.unfunded == {}


def test_restaked_steth_whose_exit_a_restaking_deposit_spends_arrives_in_lido_not_in_eth() -> None:
    """Out of EigenLayer into Symbiotic: once EigenLayer pays the stETH out (no withdrawal queued, stETH settled in
    Lido), the turn of its path is Lido; it waits there for the release, headed for Symbiotic. Symbiotic is not read
    on chain: it keeps its expected amount."""
    store = (fly("eigenlayer-steth", "symbiotic-steth", 100.0, 2.0),)
    covered = frozenset({"eth", "lido-steth", "eigenlayer-steth"})
    expected = {"lido-steth": 10.0, "symbiotic-steth": 5.0}
    match = reconcile(TREE, expected, store, {"lido-steth": 110.0}, (), covered=covered)
    assert match.expected_flights == () and match.expected["lido-steth"] == 110.0
    assert match.flights == (fly("lido-steth", "symbiotic-steth", 100.0, 2.0),)
    assert match.holdings == {"lido-steth": 10.0, "symbiotic-steth": 5.0, "eth": 0.0, "eigenlayer-steth": 0.0}
    # paid out to ETH instead (a Lido exit nobody recorded): not arrived at Lido, so still expected in flight
    match = reconcile(TREE, expected, store, {"lido-steth": 10.0, "eth": 100.0}, (), covered=covered)
    assert match.expected_flights == store and "eth" not in match.expected


def test_an_exit_claimed_before_its_due_date_is_held_not_drift() -> None:
    """stETH queued out of Lido (the store: due in 3 days) and already claimed on chain: no request, the ETH held.
    It has arrived: expected settled in ETH, nothing expected in flight (before: still expected in flight, and the
    ETH beyond the expected book drift until the due date)."""
    store = (fly("lido-steth", "eth", 100.0, 3.0),)
    match = reconcile(TREE, {"eth": 10.0}, store, {"eth": 110.0}, (), covered=frozenset(TREE))
    assert match.expected_flights == () and match.expected["eth"] == pytest.approx(110.0)
    assert match.flights == () and match.holdings["eth"] == pytest.approx(110.0)
    # only part of it claimed (the rest still requested): the part held has arrived, the request stays in flight
    chain = (fly("lido-steth", "eth", 40.0, 2.0),)
    match = reconcile(TREE, {"eth": 10.0}, store, {"eth": 70.0}, chain, covered=frozenset(TREE))
    assert match.expected["eth"] == pytest.approx(70.0)
    assert sum(f.amount_eth for f in match.expected_flights) == pytest.approx(40.0)
    # the request, waiting the store's longer days
    assert match.flights == (fly("lido-steth", "eth", 40.0, 3.0),)


def test_a_waiting_deposit_made_early_is_held_at_its_venue_and_not_counted_twice() -> None:
    """A deposit of 100 ETH into Lido waits (the store) but the operator made it early: the chain holds 150 stETH
    (50 expected) and no more idle ETH for it. The optimizer sees the 150 stETH held and no flight (before: the
    stETH AND a flight of the idle ETH left toward Lido, and the 100 ETH not in ETH reported unfunded)."""
    store = (fly("eth", "lido-steth", 100.0, 2.0),)
    expected = {"eth": 10.0, "lido-steth": 50.0}
    match = reconcile(TREE, expected, store, {"eth": 10.0, "lido-steth": 150.0}, (), covered=frozenset(TREE))
    assert match.flights == () and match.unfunded == {}
    assert match.holdings == pytest.approx(
        {"eth": 10.0, "lido-steth": 150.0, "eigenlayer-steth": 0.0, "symbiotic-steth": 0.0}
    )
    assert match.expected == pytest.approx({"eth": 10.0, "lido-steth": 150.0})
    # 40 of it made early: 60 still waits in idle ETH, given to the optimizer as a flight; the totals are the chain's
    match = reconcile(TREE, expected, store, {"eth": 70.0, "lido-steth": 90.0}, (), covered=frozenset(TREE))
    assert match.flights == (fly("eth", "lido-steth", 60.0, 2.0),) and match.unfunded == {}
    assert (match.holdings["eth"], match.holdings["lido-steth"]) == pytest.approx((10.0, 90.0))
    assert sum(match.holdings.values()) + sum(f.amount_eth for f in match.flights) == pytest.approx(160.0)


def test_an_extended_exit_whose_deposit_was_made_early_has_arrived() -> None:
    """Out of EigenLayer into Symbiotic (the store: one flight, due in 2 days), both legs already done on chain:
    Symbiotic holds 100 more than expected. Arrived there: nothing in flight, nothing waiting in Lido."""
    store = (fly("eigenlayer-steth", "symbiotic-steth", 100.0, 2.0),)
    expected = {"lido-steth": 10.0, "symbiotic-steth": 5.0}
    read = {"lido-steth": 10.0, "symbiotic-steth": 105.0}
    match = reconcile(TREE, expected, store, read, (), covered=frozenset(TREE))
    assert match.expected_flights == () and match.flights == () and match.unfunded == {}
    assert match.expected["symbiotic-steth"] == pytest.approx(105.0)
    assert match.holdings["lido-steth"] == pytest.approx(10.0)


def test_a_cycle_after_the_operator_made_the_waiting_deposits_early_sees_them_once(
    tmp_path: Path, chain: tuple[FixtureServer, Chain]
) -> None:
    """After an applied rotation the operator makes the deposits waiting on idle ETH before the exits land: the
    chain holds them at their venues. No `book_drift`, the optimizer gets the chain's total once (before: the
    deposits held AND given again as flights out of what idle ETH was left), and proposes none of them again."""
    server, answers = chain
    settings, service, position = applied_rotation(tmp_path, server)
    held = on_chain(settings, position)
    made = [p for p in position.pending if p.from_venue == "eth"]
    assert made, position.pending
    for p in made:
        held["eth"] -= p.amount_eth
        held[p.to_venue] = held.get(p.to_venue, 0.0) + p.amount_eth
    eigen = [p.amount_eth for p in position.pending if p.from_venue == "eigenlayer-steth"]
    lido = [(p.amount_eth, False, False) for p in lido_exits(position)]
    hold(answers, held, lido, eigen)
    with capture_logs() as logs:
        out = service.chain_position(settings, service.holdings(), service.in_flight())
    assert out is not None
    assert not [e for e in logs if e["event"] == "book_drift"], logs
    holdings, flights = out
    total = sum(held.values()) + sum(eth for eth, _, _ in lido) + sum(eigen)
    assert sum(holdings.values()) + sum(f.amount_eth for f in flights) == pytest.approx(total, abs=1e-6)
    assert not [f for f in flights if f.from_venue == "eth"], flights
    plan = service.rebalance("cli").plan
    assert not [m for m in plan.moves if m.to_venue in {p.to_venue for p in made}], plan.moves
