"""The daemon's holding period (`[limits] hold_days`): the moves of the applied proposals of the last hold_days
(`Store.recent_moves`) become the optimizer's `recent_entries` / `recent_exits` in `inputs_for`, and the cycle logs
them (`holding_period`). Dry runs are not trades; a venue the config no longer has and a damaged record are left out
and logged. On a real SQLite file (the store's query on PostgreSQL too), and end to end through `Service.rebalance`
in applied mode: the second plan does not sell what the first bought, nor buy back what it sold."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aggregator.service import Service
from aggregator.service.cycle import CycleResult, inputs_for, longest_queue_chain
from aggregator.settings import Settings
from aggregator.store import Store
from optimizer import Move
from tests.helpers.settings import demo_settings

T0 = datetime(2026, 9, 14, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def leg(action: str, venue: str, eth: float = 500.0) -> Move:
    """A move as the optimizer writes it (`optimizer.moves.tree_moves`): `venue` is where capital enters or leaves."""
    frm, to = (venue, "eth") if action == "withdraw" else ("eth", venue)
    return Move(
        step=1, action=action, venue=venue, from_venue=frm, to_venue=to, amount_eth=eth, share=eth / 10_000.0,
        cost_eth=0.0, days=5.0 if action == "withdraw" else 0.0,
        route="queue" if action == "withdraw" else "deposit",
    )  # fmt: skip


ROTATION = [leg("withdraw", "lido-steth"), leg("deposit", "rocketpool-reth")]  # stETH sold for rETH


@dataclass
class Desk:
    """The demo config on a real SQLite file with a settable clock, and one dry-run cycle at T0 whose collection and
    plan the proposals below are recorded with (their moves replaced)."""

    settings: Settings
    service: Service
    clock: dict[str, datetime] = field(default_factory=lambda: {"now": T0})
    first: CycleResult | None = None

    def trade(
        self, ago: timedelta, moves: list[Move], *, apply: bool = True, store: Store | None = None
    ) -> str:
        """Record a proposal with `moves` `ago` before T0, applied or a dry run; returns its id."""
        assert self.first is not None
        run_id = uuid.uuid4().hex[:12]
        plan = self.first.plan.model_copy(update={"moves": moves})
        self.clock["now"] = T0 - ago
        try:
            (store or self.service.store).record_cycle(self.first.book, "cli", run_id, plan, apply=apply)
        finally:
            self.clock["now"] = T0
        return run_id

    def inputs(
        self, hold_days: float = 14.0
    ) -> tuple[dict[str, str], dict[str, str], list[MutableMapping[str, Any]]]:
        """`inputs_for` at T0 on the store: (recent_entries, recent_exits, the log events it wrote)."""
        assert self.first is not None
        limits = self.settings.limits.model_copy(update={"hold_days": hold_days})
        settings = self.settings.model_copy(update={"limits": limits})
        with capture_logs() as logs:
            got = inputs_for(settings, self.first.book, self.service.store)
        return got.recent_entries, got.recent_exits, logs


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    settings = demo_settings(tmp_path, database={"url": f"sqlite:///{tmp_path}/desk.sqlite"})
    clock = {"now": T0}
    made = Desk(settings, Service(settings, now=lambda: clock["now"]), clock)
    made.first = made.service.rebalance("cli")  # a dry run: not a trade
    assert made.first.plan.status == "rebalance" and made.first.book.fetched_at == T0
    return made


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def test_the_applied_moves_of_the_last_hold_days_are_the_holding_period(desk: Desk) -> None:
    """An applied proposal 3 days ago withdrew from stETH (a 5-day queue) and deposited into rETH: stETH is a recent
    exit from the proposal's time, rETH a recent entry from when its deposit is made, once the exit has landed (2
    days from now: the replay dates a leg the same way), and the cycle logs what the holding period holds."""
    desk.trade(3 * DAY, ROTATION)
    entries, exits, logs = desk.inputs()
    assert entries == {"rocketpool-reth": "2026-09-16 12:00 UTC"}
    assert exits == {"lido-steth": "2026-09-11 12:00 UTC"}
    [held] = events(logs, "holding_period")
    assert held["entries"] == entries and held["exits"] == exits and held["hold_days"] == 14.0


def test_hold_days_zero_is_no_holding_period(desk: Desk) -> None:
    desk.trade(3 * DAY, ROTATION)
    assert desk.inputs(hold_days=0.0)[:2] == ({}, {})
    assert desk.inputs(hold_days=14.0)[:2] != ({}, {})


def test_a_trade_older_than_hold_days_is_out_and_one_within_is_in(desk: Desk) -> None:
    """20 days ago is outside a 14-day period, 13 days ago inside."""
    desk.trade(20 * DAY, [leg("deposit", "rocketpool-reth")])
    desk.trade(13 * DAY, [leg("withdraw", "lido-steth")])
    entries, exits, _ = desk.inputs()
    assert entries == {}
    assert exits == {"lido-steth": "2026-09-01 12:00 UTC"}


def test_a_deposit_made_within_the_period_counts_although_its_plan_is_older(desk: Desk) -> None:
    """A rotation applied 16 days ago: its stETH exit (16 days ago) is outside a 14-day period, its rETH deposit,
    made when the exit landed 11 days ago, inside; the cycle looks back by the config's longest chain of queues
    (EigenLayer then Lido) to find it."""
    desk.trade(16 * DAY, ROTATION)
    entries, exits, _ = desk.inputs()
    assert entries == {"rocketpool-reth": "2026-09-03 12:00 UTC"} and exits == {}
    assert desk.first is not None
    universe = inputs_for(desk.settings, desk.first.book, None).universe
    assert longest_queue_chain(universe) == pytest.approx(19.0)


def test_a_dry_run_is_not_a_trade(desk: Desk) -> None:
    """A dry-run proposal 3 days ago with the same moves holds nothing; the applied one 5 days ago does."""
    desk.trade(3 * DAY, [leg("deposit", "rocketpool-reth")], apply=False)
    desk.trade(5 * DAY, [leg("withdraw", "lido-steth")])
    entries, exits, _ = desk.inputs()
    assert entries == {}
    assert exits == {"lido-steth": "2026-09-09 12:00 UTC"}


def test_the_latest_trade_of_a_venue_gives_its_time(desk: Desk) -> None:
    """rETH bought 10 days ago and again 2 days ago (after that plan's 5-day exit: 3 days from now): the period
    quotes the later. A venue bought and later sold within the period is both an entry and an exit."""
    desk.trade(10 * DAY, [leg("deposit", "rocketpool-reth"), leg("deposit", "coinbase-cbeth")])
    desk.trade(2 * DAY, [leg("deposit", "rocketpool-reth"), leg("withdraw", "coinbase-cbeth")])
    entries, exits, _ = desk.inputs()
    assert entries == {"rocketpool-reth": "2026-09-17 12:00 UTC", "coinbase-cbeth": "2026-09-04 12:00 UTC"}
    assert exits == {"coinbase-cbeth": "2026-09-12 12:00 UTC"}


def test_a_venue_removed_from_the_config_is_left_out_and_logged(desk: Desk) -> None:
    """A trade into a venue the config no longer lists would make the optimizer's inputs invalid: it is dropped,
    with a warning naming it, and the others still count."""
    desk.trade(3 * DAY, [leg("withdraw", "swell-rsweth"), leg("deposit", "rocketpool-reth")])
    entries, exits, logs = desk.inputs()
    assert entries == {"rocketpool-reth": "2026-09-16 12:00 UTC"} and exits == {}  # after the swETH exit
    [warned] = events(logs, "holding_period_venue_unknown")
    assert warned["venues"] == ["swell-rsweth"]


def _garbage(con: sqlite3.Connection, run_id: str) -> None:
    con.execute("update proposals set plan = ? where id = ?", ('{"status": "rebalance", "mo', run_id))


def _no_moves(con: sqlite3.Connection, run_id: str) -> None:
    plan = json.loads(con.execute("select plan from proposals where id = ?", (run_id,)).fetchone()[0])
    del plan["moves"]
    con.execute("update proposals set plan = ? where id = ?", (json.dumps(plan), run_id))


def _bad_move(con: sqlite3.Connection, run_id: str) -> None:
    plan = json.loads(con.execute("select plan from proposals where id = ?", (run_id,)).fetchone()[0])
    plan["moves"][0]["action"] = "teleport"
    con.execute("update proposals set plan = ? where id = ?", (json.dumps(plan), run_id))


def _bad_days(con: sqlite3.Connection, run_id: str) -> None:
    plan = json.loads(con.execute("select plan from proposals where id = ?", (run_id,)).fetchone()[0])
    plan["moves"][0]["days"] = 1e308  # a date that far out would overflow, not be a holding period
    con.execute("update proposals set plan = ? where id = ?", (json.dumps(plan), run_id))


def _bad_time(con: sqlite3.Connection, run_id: str) -> None:
    con.execute("update proposals set created_at = ? where id = ?", ("not a time", run_id))


DAMAGE: dict[str, tuple[Callable[[sqlite3.Connection, str], None], str]] = {
    "garbage-json": (_garbage, "is not valid JSON"),
    "no-moves": (_no_moves, "lacks the field 'moves'"),
    "bad-move": (_bad_move, "moves.0.action"),
    "bad-time": (_bad_time, "created_at"),
    "bad-days": (_bad_days, "moves.0.days"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_proposal_is_left_out_and_logged_and_the_others_count(desk: Desk, damage: str) -> None:
    """One applied proposal's record does not parse: the cycle does not fail; that proposal is left out (logged as
    `proposal_damaged`, naming it and why) and the other applied proposal still holds its venue."""
    bad = desk.trade(3 * DAY, [leg("deposit", "coinbase-cbeth")])
    desk.trade(2 * DAY, [leg("deposit", "rocketpool-reth")])
    edit, why = DAMAGE[damage]
    with sqlite3.connect(desk.service.store.url.removeprefix("sqlite:///")) as con:
        edit(con, bad)
    entries, exits, logs = desk.inputs()
    assert entries == {"rocketpool-reth": "2026-09-12 12:00 UTC"} and exits == {}
    [warned] = events(logs, "proposal_damaged")
    assert (
        warned["proposal"] == bad
        and f"proposal {bad} is damaged" in warned["error"]
        and why in warned["error"]
    )


def test_recent_moves_reads_the_applied_proposals_since_a_time(desk: Desk, store_url: str) -> None:
    """`Store.recent_moves` on SQLite and PostgreSQL: the applied proposals' moves made at or after `since`
    (inclusive), in the order they were written, with aware UTC times; a deposit is made when its plan's exits have
    landed (5 days after the rotation); a proposal applied before `since` counts only through `lookback`; dry runs
    are not listed."""
    store = Store(store_url, now=lambda: desk.clock["now"])
    desk.trade(15 * DAY, [leg("deposit", "kelp-rseth")], store=store)
    desk.trade(14 * DAY, ROTATION, store=store)
    desk.trade(3 * DAY, [leg("deposit", "coinbase-cbeth")], store=store, apply=False)
    desk.trade(1 * DAY, [leg("withdraw", "rocketpool-reth")], store=store)
    assert store.recent_moves(T0 - 14 * DAY) == [
        (T0 - 14 * DAY, "withdraw", "lido-steth"),
        (T0 - 9 * DAY, "deposit", "rocketpool-reth"),
        (T0 - DAY, "withdraw", "rocketpool-reth"),
    ]
    assert store.recent_moves(T0 - 10 * DAY) == [(T0 - DAY, "withdraw", "rocketpool-reth")]
    assert store.recent_moves(T0 - 10 * DAY, lookback=5 * DAY) == [
        (
            T0 - 9 * DAY,
            "deposit",
            "rocketpool-reth",
        ),  # the rotation applied 14 days ago: its deposit 9 days ago
        (T0 - DAY, "withdraw", "rocketpool-reth"),
    ]
    assert store.recent_moves(T0) == []


def _demo_with(tmp_path: Path, hold_days: float) -> tuple[Service, dict[str, datetime], Path]:
    """The demo in applied mode deciding on each cycle's own values (`window_days = 0`; the jump quarantine off so a
    new value counts at once), with a settable clock; returns the service, its clock and the snapshot it reads."""
    home = tmp_path / f"hold-{hold_days:g}"
    settings = demo_settings(
        home,
        database={"url": f"sqlite:///{home}/demo.sqlite"},
        limits={"hold_days": hold_days},
        rates={"window_days": 0, "jump_threshold": 0.5},
    )
    clock = {"now": T0}
    return Service(settings, now=lambda: clock["now"]), clock, home / "data/snapshots/demo-2026-09-14.json"


def _two_cycles(
    tmp_path: Path, hold_days: float
) -> tuple[CycleResult, CycleResult, list[MutableMapping[str, Any]]]:
    """Applied rebalance at T0 (the demo sells stETH for rETH), then 3 days later rETH pays 0.6 % and stETH 5 %:
    the second applied rebalance, with its log."""
    service, clock, snapshot = _demo_with(tmp_path, hold_days)
    first = service.rebalance("cli", apply=True)
    doc = json.loads(snapshot.read_text())
    for quote in doc["quotes"]:
        quote["value"] = {"rocketpool-reth.base": 0.006, "lido-steth.base": 0.05}.get(
            quote["key"], quote["value"]
        )
    snapshot.write_text(json.dumps(doc))
    clock["now"] = T0 + 3 * DAY
    with capture_logs() as logs:
        second = service.rebalance("cli", apply=True)
    return first, second, logs


def test_the_daemon_does_not_sell_what_it_bought_within_the_holding_period(tmp_path: Path) -> None:
    """End to end on the demo: the first applied plan sells stETH and buys rETH; 3 days later rETH's yield falls
    and stETH's rises. Without a holding period (hold_days 0) the second plan sells rETH and buys stETH back; with
    the demo's 14 days it does neither, and the plan and the log say why."""
    first, free, _ = _two_cycles(tmp_path, 0.0)
    bought = {m.venue for m in first.plan.moves if m.action == "deposit"}
    sold = {m.venue for m in first.plan.moves if m.action == "withdraw"}
    assert "rocketpool-reth" in bought and "lido-steth" in sold, first.plan.moves
    assert any(m.action == "withdraw" and m.venue == "rocketpool-reth" for m in free.plan.moves), (
        free.plan.moves
    )
    assert any(m.action == "deposit" and m.venue == "lido-steth" for m in free.plan.moves), free.plan.moves

    first, held, logs = _two_cycles(tmp_path, 14.0)
    assert {m.venue for m in first.plan.moves if m.action == "deposit"} == bought
    when = "2026-09-14 12:00 UTC"
    made = "2026-09-19 12:00 UTC"  # the deposits wait for stETH's 5-day queue
    inputs = held.plan.problem.inputs
    assert inputs.recent_entries == dict.fromkeys(sorted(bought), made)
    assert inputs.recent_exits == dict.fromkeys(sorted(sold), when)
    assert not [m for m in held.plan.moves if m.action == "withdraw" and m.venue in bought], held.plan.moves
    assert not [m for m in held.plan.moves if m.action == "deposit" and m.venue in sold], held.plan.moves
    assert any(
        "14-day holding period: " in h and "rocketpool-reth (bought" in h for h in held.plan.heuristics
    )
    [blocked] = [b for b in held.plan.entry_blocked if b.venue == "lido-steth"]
    assert blocked.reason == f"sold {when}: not bought back within the 14-day holding period"
    [event] = events(logs, "holding_period")
    assert event["entries"] == inputs.recent_entries and event["exits"] == inputs.recent_exits
