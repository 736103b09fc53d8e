"""Simulation before signing (issue #16): every batch call as an `eth_call` from the Safe against a local JSON-RPC
server on 127.0.0.1 that answers success or a revert per function; the revert's reason decoded, the step marked
blocked (or unverified when an earlier step of the plan may be what it lacks), in the summary, the batch files
(checksum still right), the CLI table and the API. Nothing is ever sent: the server refuses any other method."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from aggregator.core.errors import SourceDataError
from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.service.chain import simulate
from aggregator.settings import load_settings
from execution.calls import STETH, Call, Context, approve
from execution.safe import batches, checksum, summary
from execution.simulate import judge, revert_reason
from execution.timeline import schedule
from tests.conftest import AGGREGATOR, copy_demo, free_port
from tests.execution.test_chain_book import BLOCK, DEPOSIT_POOL, TREASURY, Chain, sel, word
from tests.execution.test_timeline import HOLDINGS, MOVES, move
from tests.fixture_server import FixtureServer, Reply

TOKEN = "t0ken-for-tests-0123456789"
E18 = 10**18


def error_string(text: str) -> str:
    """Error(string) revert data written out word by word."""
    raw = text.encode()
    padded = raw.hex().ljust(64 * ((len(raw) + 31) // 32), "0")
    return "0x08c379a0" + word(0x20) + word(len(raw)) + padded


def revert(data: str, message: str = "execution reverted") -> dict[str, Any]:
    return {"code": 3, "message": message, "data": data}


def test_revert_reasons_are_decoded() -> None:
    assert revert_reason(revert(error_string("Pausable: paused"))) == "Error('Pausable: paused')"
    assert revert_reason(revert("0x4e487b71" + word(0x11))) == "Panic(0x11: arithmetic overflow or underflow)"
    # custom errors by selector, the selector computed here with another keccak
    assert revert_reason(revert(sel("MaxTVLReached()"))) == "MaxTVLReached()"
    # Kelp's selectors as its interface's comments print them (public code), not computed here
    assert revert_reason(revert("0x1751ef83")) == "MaximumDepositLimitReached()"
    assert revert_reason(revert("0x1ec9a894")) == "MinimumAmountToReceiveNotMet()"
    allowance = sel("ERC20InsufficientAllowance(address,uint256,uint256)")
    spender = "0x889edc2edab5f40e902b864ad4d7ade8e412f9b1"
    data = allowance + spender[2:].rjust(64, "0") + word(0) + word(5 * 10**18)
    assert revert_reason(revert(data)) == f"ERC20InsufficientAllowance({spender}, 0, 5000000000000000000)"
    assert revert_reason(revert("0xdeadbeef" + word(1))).startswith(
        "custom error 0xdeadbeef (selector not known"
    )
    assert revert_reason({"code": -32000, "message": "insufficient funds for transfer"}) == (
        "insufficient funds for transfer"
    )
    assert "does not decode" in revert_reason(revert("0x08c379a0" + "12"))


class Simulator:
    """Answers eth_blockNumber and eth_call from the Safe: a revert for the selectors in `reverts`, else success.
    Records every eth_call; any other method is an error (nothing may be sent)."""

    def __init__(self, reverts: dict[str, dict[str, Any]]) -> None:
        self.reverts = reverts
        self.calls: list[tuple[dict[str, Any], str]] = []

    def __call__(self, body: Any) -> Reply:
        out = []
        for req in body:
            if req["method"] == "eth_blockNumber":
                out.append({"jsonrpc": "2.0", "id": req["id"], "result": hex(BLOCK)})
                continue
            assert req["method"] == "eth_call", req["method"]
            call, block = req["params"]
            self.calls.append((call, block))
            error = self.reverts.get(call["data"][:10])
            item = {"error": error} if error else {"result": "0x" + word(1)}
            out.append({"jsonrpc": "2.0", "id": req["id"], **item})
        return Reply(json.dumps(out).encode())


@pytest.fixture
def served() -> Iterator[tuple[FixtureServer, Simulator]]:
    server = FixtureServer()
    sim = Simulator(
        {
            sel("queueWithdrawals((address[],uint256[],address)[])"): revert(sel("CurrentlyPaused()")),
            sel("requestWithdrawals(uint256[],address)"): revert(
                sel("ERC20InsufficientAllowance(address,uint256,uint256)") + word(1) + word(0) + word(1)
            ),
            sel("deposit()"): revert(error_string("deposit pool full")),
        }
    )
    server.rpc["/rpc"] = sim
    with server:
        yield server, sim


def test_each_call_is_simulated_from_the_safe_and_reverts_are_judged(
    served: tuple[FixtureServer, Simulator],
) -> None:
    server, sim = served
    timeline = schedule(MOVES, HOLDINGS, date(2026, 9, 14))
    ctx = Context(TREASURY, rates={"eigenlayer-steth": 1.0}, resolved={"rocketDepositPool": DEPOSIT_POOL})
    days, block = simulate(
        f"{server.url}/rpc", TREASURY, batches(timeline, "abc123", ctx, datetime(2026, 9, 14, tzinfo=UTC))
    )
    assert block == BLOCK
    assert len(sim.calls) == sum(len(d.calls) for d in days) > 0
    assert {b for _, b in sim.calls} == {hex(BLOCK)}
    assert all(c["from"] == TREASURY for c, _ in sim.calls)
    deposits = [c for c, _ in sim.calls if c["data"] == sel("deposit()")]
    # deposits wait until the exits land (execution/timeline.py): one rETH deposit of the whole 6,500 ETH on day 19
    assert [int(c["value"], 16) for c in deposits] == [6500 * E18]  # the ETH goes along
    assert all(c["to"] == DEPOSIT_POOL for c in deposits)

    day0, day19 = days[0], days[-1]
    assert day19.day == 19
    statuses = [(c.step, c.function, c.status) for c in day0.checks]
    assert statuses == [
        (1, "queueWithdrawals((address[],uint256[],address)[])", "blocked"),
        (2, "approve(address,uint256)", "ok"),
        (3, "requestWithdrawals(uint256[],address)", "unverified"),
    ]
    assert day0.checks[0].reason == "CurrentlyPaused()"
    # the request lacks the allowance that step 2 gives: a separate eth_call cannot see it, so not blocked
    assert day0.checks[2].reason.startswith("ERC20InsufficientAllowance(")
    assert "needs the approval of step 2" in day0.checks[2].reason
    [rocket] = day19.checks
    assert rocket.status == "unverified" and rocket.reason.startswith(
        "Error('deposit pool full'); runs on day 19"
    )
    assert [c.step for c in day0.blocked] == [1]

    assert day0.batch is not None and day19.batch is not None
    for d in (day0, day19):
        assert d.batch is not None and checksum(d.batch) == d.batch["meta"]["checksum"]
    text = day0.batch["meta"]["description"]
    assert f"at block {BLOCK}: 2 step(s) revert" in text
    assert "step 1 BLOCKED: queueWithdrawals((address[],uint256[],address)[]): CurrentlyPaused()" in text

    listed = summary("abc123", days, ctx, simulated_at=block)
    assert listed["simulated_at_block"] == BLOCK
    assert listed["days"][0]["blocked"][0] == {
        "step": 1,
        "function": "queueWithdrawals((address[],uint256[],address)[])",
        "status": "blocked",
        "reason": "CurrentlyPaused()",
    }
    assert [b["step"] for b in listed["days"][0]["blocked"]] == [1] and not listed["days"][-1]["blocked"]
    assert listed["days"][0]["calls"][1]["simulation"] == {"status": "ok", "reason": ""}


def test_a_deposit_on_day_zero_that_reverts_is_blocked(served: tuple[FixtureServer, Simulator]) -> None:
    """A plan that queues no exit deposits on day 0: a revert there is the deposit's own, so it is blocked."""
    server, _ = served
    plan = [move(1, "deposit", "eth", "rocketpool-reth", 1000.0, 0.0, "deposit")]  # the idle ETH of HOLDINGS
    timeline = schedule(plan, HOLDINGS, date(2026, 9, 14))
    ctx = Context(TREASURY, resolved={"rocketDepositPool": DEPOSIT_POOL})
    [day0], _ = simulate(
        f"{server.url}/rpc", TREASURY, batches(timeline, "abc123", ctx, datetime(2026, 9, 14, tzinfo=UTC))
    )
    assert day0.day == 0
    assert [(c.function, c.status, c.reason) for c in day0.checks] == [
        ("deposit()", "blocked", "Error('deposit pool full')")
    ]


def test_an_approval_for_another_contract_does_not_excuse_a_revert() -> None:
    calls = [approve(STETH, "0x" + "ab" * 20, 1, ""), Call("0x" + "cd" * 20, "deposit", (), ())]
    checks = judge(0, calls, [{"result": "0x"}, {"error": revert(error_string("no"))}])
    assert [c.status for c in checks] == ["ok", "blocked"]


def test_a_malformed_simulation_answer_is_an_error_not_a_pass(
    served: tuple[FixtureServer, Simulator],
) -> None:
    server, sim = served
    timeline = schedule(MOVES, HOLDINGS, date(2026, 9, 14))
    ctx = Context(TREASURY, rates={"eigenlayer-steth": 1.0})
    days = batches(timeline, "abc123", ctx, datetime(2026, 9, 14, tzinfo=UTC))

    def broken(body: Any) -> Reply:
        answers = json.loads(sim(body).body)
        for a in answers:
            if "result" in a and a["id"] == 1:
                a["result"] = 42
        return Reply(json.dumps(answers).encode())

    server.rpc["/rpc"] = broken
    with pytest.raises(SourceDataError, match=r"eth_call of .*\(day 0\): result is not hex data"):
        simulate(f"{server.url}/rpc", TREASURY, days)


class ChainAndSimulator(Chain):
    """The chain book's answers (test_chain_book) and, for eth_call from the Safe, the simulation's."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__()
        self.sim = sim

    def __call__(self, body: Any) -> Reply:
        if any(r["method"] == "eth_call" and "from" in r["params"][0] for r in body):
            return self.sim(body)
        return super().__call__(body)


def test_cli_safe_batch_simulates_and_shows_blocked_steps(tmp_path: Path) -> None:
    sim = Simulator({sel("deposit()"): revert(error_string("deposit pool full"))})
    server = FixtureServer()
    server.rpc["/rpc"] = ChainAndSimulator(sim)
    config = copy_demo(
        tmp_path,
        lambda t: t.replace(
            "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
        ),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    out_dir = tmp_path / "b"
    with server:
        done = subprocess.run(
            [AGGREGATOR, "rebalance", "--config", str(config), "--safe-batch", str(out_dir)],
            check=False,
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    assert "simulated with eth_call from the Safe at block" in done.stdout
    [summary_file] = out_dir.glob("*-summary.json")
    listed = json.loads(summary_file.read_text())
    assert listed["simulated_at_block"] == BLOCK
    calls = [(d["day"], c) for d in listed["days"] for c in d["calls"]]
    assert calls and all("simulation" in c for _, c in calls)
    deposits = [(day, c["simulation"]) for day, c in calls if c["function"] == "deposit()"]
    assert deposits  # the plan buys rETH (test_chain_book)
    for day, verdict in deposits:
        assert verdict["status"] == ("blocked" if day == 0 else "unverified")
        assert verdict["reason"].startswith("Error('deposit pool full')")
    assert len(sim.calls) == len(calls)
    for path in out_dir.glob("*-day-*.json"):
        batch = json.loads(path.read_text())
        assert checksum(batch) == batch["meta"]["checksum"]
        assert f"Simulated with eth_call from the Safe at block {BLOCK}" in batch["meta"]["description"]
    if any(day == 0 for day, _ in deposits):
        assert "BLOCKED" in done.stdout


def test_api_safe_batch_is_simulated_with_an_rpc(tmp_path: Path) -> None:
    sim = Simulator({sel("deposit()"): revert(error_string("deposit pool full"))})
    rpc = FixtureServer()
    rpc.rpc["/rpc"] = ChainAndSimulator(sim)
    with rpc:
        config = copy_demo(
            tmp_path,
            lambda t: t.replace(
                "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{rpc.url}/rpc"\n', 1
            ),
        )
        service = Service(load_settings(config))
        server = ApiServer(create_app(service, Metrics(), SecretStr(TOKEN)), "127.0.0.1", free_port())
        server.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120) as client:
                made = client.post("/api/v1/rebalance", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
                assert made.status_code == 200, made.text
                proposal = made.json()["proposal"]
                got = client.get(f"/api/v1/proposals/{proposal}/safe-batch").json()
        finally:
            server.stop()
    listed = got["summary"]
    assert listed["simulated_at_block"] == BLOCK and "chain_errors" not in listed
    assert listed["rates"] == pytest.approx(
        {"rocketpool-reth": 1.1, "eigenlayer-steth": 1.05, "kelp-rseth": 1.03}
    )
    assert all("simulation" in c for d in listed["days"] for c in d["calls"])
    assert sim.calls and all(c["from"] == TREASURY for c, _ in sim.calls)
    for batch in got["batches"].values():
        assert checksum(batch) == batch["meta"]["checksum"]
