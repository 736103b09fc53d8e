"""`aggregator sweep`: a 2×2 grid on the bundled history gives the same per-cell results run one by one in this
process, on local worker processes and on a real Dask `LocalCluster` with process workers; a cell that raises is
reported and the others complete; a bad grid is refused naming the key and what is valid; the CLI as a subprocess.

The grid's period is cut to six weeks of the bundled history so that each cell takes seconds."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.core.errors import ConfigError
from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.inputs import BacktestInputs
from aggregator.research.backtest.report import summary
from aggregator.research.backtest.run import backtest
from aggregator.research.sweep.cell import CellResult, CellTask, run_cell
from aggregator.research.sweep.engines import Dask, Local, Serial
from aggregator.research.sweep.grid import Grid, cell_inputs, load_grid, parse_grid
from aggregator.research.sweep.run import run_sweep
from aggregator.settings import load_settings
from optimizer import ModelCache
from tests.helpers.cli import run
from tests.helpers.demo import copy_demo

GRID = """
[period]
start = 2024-04-01
end = 2024-05-12

[grid]
cvar_budget = [0.05, 0.07]
prior_scale = [1.0, 2.0]
"""
FAILING = "c0002"


def raising_cell(task: CellTask) -> CellResult:
    """run_cell, except that one cell raises (module level: local and Dask workers import it by name)."""
    if task.cell.id == FAILING:
        raise RuntimeError("boom in the cell")
    return run_cell(task)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestInputs, Path]:
    home = tmp_path_factory.mktemp("sweep")
    config = copy_demo(home)
    grid = home / "grid.toml"
    grid.write_text(GRID)
    return inputs_from_settings(load_settings(config)), grid


@pytest.fixture(scope="module")
def grid(demo: tuple[BacktestInputs, Path]) -> Grid:
    inputs, path = demo
    return load_grid(path, inputs)


@pytest.fixture(scope="module")
def one_by_one(demo: tuple[BacktestInputs, Path], grid: Grid) -> dict[str, dict[str, float]]:
    """Each cell's optimizer row from the backtest itself, each with a model compiled for it alone."""
    inputs, _ = demo
    out = {}
    for cell in grid.cells():
        data = summary(backtest(cell_inputs(inputs, grid, cell), cache=ModelCache()))
        (row,) = [s for s in data["strategies"] if s["name"].startswith("optimizer ")]
        out[cell.id] = {k: row[k] for k in ("net_yield", "cvar_mean", "costs_eth", "turnover", "trades")}
    return out


def metrics(results: tuple[CellResult, ...]) -> dict[str, dict[str, float]]:
    """Each cell's figures; compared with `same`: a worker that re-solves its compiled model for a later cell
    warm-starts the solver, so figures may differ from a fresh compile's in the last bits, never more."""
    keys = ("net_yield", "cvar_mean", "costs_eth", "turnover", "trades")
    return {r.id: {k: r.metrics[k] for k in keys} for r in results if r.ok}


def same(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> bool:
    return got.keys() == want.keys() and all(
        got[c]["trades"] == want[c]["trades"]
        and all(got[c][k] == pytest.approx(want[c][k], rel=1e-9, abs=1e-12) for k in want[c])
        for c in want
    )


def test_the_grid_has_four_cells_that_differ(grid: Grid, one_by_one: dict[str, dict[str, float]]) -> None:
    assert [c.id for c in grid.cells()] == ["c0000", "c0001", "c0002", "c0003"]
    assert grid.cells()[3].values == {"cvar_budget": 0.07, "prior_scale": 2.0}
    # the axes matter: otherwise "same results everywhere" would prove nothing about which cell ran where
    assert len({round(m["net_yield"], 9) for m in one_by_one.values()}) >= 3


def test_serial_and_local_workers_match_one_by_one(
    demo: tuple[BacktestInputs, Path], grid: Grid, one_by_one: dict[str, dict[str, float]], tmp_path: Path
) -> None:
    inputs, _ = demo
    serial = run_sweep(inputs, grid, Serial())
    assert same(metrics(serial.results), one_by_one)
    # one process keeps its compiled models: one per prior scale, re-solved for the cells after
    assert [r.compiled for r in serial.results][2:] == [0, 0] and sum(r.compiled for r in serial.results) <= 2
    local = run_sweep(inputs, grid, Local(2), tmp_path / "local")
    assert same(metrics(local.results), one_by_one)
    assert [r.id for r in local.results] == [
        "c0000",
        "c0001",
        "c0002",
        "c0003",
    ]  # grid order, whatever landed first
    # two processes, each compiling at most once per prior scale it meets
    workers = {r.worker for r in local.results}
    assert 1 <= len(workers) <= 2 and all(r.worker != serial.results[0].worker for r in local.results)
    assert sum(r.compiled for r in local.results) <= 2 * len(workers)
    # the files: the table in grid order, one summary per cell, both frontier plots
    rows = list(csv.DictReader(io.StringIO((tmp_path / "local" / "sweep.csv").read_text())))
    assert [r["cell"] for r in rows] == ["c0000", "c0001", "c0002", "c0003"]
    assert float(rows[3]["net_yield"]) == pytest.approx(one_by_one["c0003"]["net_yield"], rel=1e-8)
    cell = json.loads((tmp_path / "local" / "cells" / "c0001.json").read_text())
    assert cell["params"] == {"cvar_budget": 0.05, "prior_scale": 2.0}
    assert cell["summary"]["period"] == {"start": "2024-04-01", "end": "2024-05-12", "days": 42}
    assert cell["summary"]["cvar_budget"] == 0.05
    for name in ("frontier-cvar.png", "frontier-costs.png"):
        assert (tmp_path / "local" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


def test_a_dask_local_cluster_matches_one_by_one_and_streams(
    demo: tuple[BacktestInputs, Path], grid: Grid, one_by_one: dict[str, dict[str, float]], cluster: object
) -> None:
    inputs, _ = demo
    landed: list[str] = []
    address = cluster.scheduler.address  # type: ignore[attr-defined]
    result = run_sweep(inputs, grid, Dask(address), on_result=lambda r: landed.append(r.id))
    assert same(metrics(result.results), one_by_one)
    assert sorted(landed) == ["c0000", "c0001", "c0002", "c0003"]  # each result handed over as it arrived
    assert all(":" in r.worker for r in result.results)


def test_a_cell_that_raises_is_reported_and_the_rest_complete(
    demo: tuple[BacktestInputs, Path],
    grid: Grid,
    one_by_one: dict[str, dict[str, float]],
    cluster: object,
    tmp_path: Path,
) -> None:
    inputs, _ = demo
    expected = {k: v for k, v in one_by_one.items() if k != FAILING}
    for engine in (Local(2, fn=raising_cell), Dask(cluster, fn=raising_cell)):  # type: ignore[arg-type]
        result = run_sweep(inputs, grid, engine, tmp_path / type(engine).__name__)
        assert [r.id for r in result.failed] == [FAILING]
        assert "RuntimeError: boom in the cell" in (result.failed[0].error or "")
        assert same(metrics(result.results), expected)
        table = json.loads((tmp_path / type(engine).__name__ / "sweep.json").read_text())
        assert table["failed"] == [FAILING]
        assert [c["error"] != "" for c in table["cells"]] == [False, False, True, False]
    # and the cell's own exception inside the backtest (not only one its function raised) is caught the same way
    bad = Grid(axes=(("cvar_budget", (0.05,)),), start=grid.start, end=grid.end)
    broken = dataclasses.replace(inputs, backtest=None)
    (only,) = run_sweep(broken, bad, Serial()).results
    assert not only.ok and "ConfigError" in (only.error or "") and "[backtest]" in (only.error or "")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "[grid]\ncvar_budgt = [0.05]\n",
            ["unknown grid key(s) ['cvar_budgt']", "cvar_budget", "prior_scale"],
        ),
        ("[grid]\ncvar_budget = [0.05, 1.5]\n", ["grid.cvar_budget = 1.5", "at most 1"]),
        ("[grid]\ncvar_budget = [true]\n", ["grid.cvar_budget = True", "not a finite number"]),
        ('[grid]\nmax_turnover = ["never"]\n', ["grid.max_turnover = 'never'", '"none" for no cap']),
        ("[grid]\ntrade_cost_multiple = [0.5]\n", ["grid.trade_cost_multiple = 0.5", "from 1 to 100"]),
        ("[grid]\nwindow_days = []\n", ["grid.window_days is an empty list"]),
        ("[grid]\nhorizon_days = [180, 180]\n", ["lists a value twice"]),
        ("[grid]\nprior_scale = [500]\n", ["grid.prior_scale = 500", "at most 100"]),
        ("[grid]\nprior_scale = [90]\n", ["makes risk node", "> 1", "valid: at most"]),
        ("[grids]\ncvar_budget = [0.05]\n", ["unknown section(s) ['grids']", "['grid', 'period']"]),
        ("[period]\nstart = 2024-04-01\n", ["[grid] is missing or empty", "valid axes"]),
        (
            "[grid]\ncvar_budget = 0.05\n[period]\nstart = 2023-01-01\n",
            ["period.start", "2024-01-23..2024-09-05"],
        ),
        ("[grid]\ncvar_budget = 0.05\n[period]\nbegin = 2024-03-01\n", ["unknown [period] key(s) ['begin']"]),
        ("[grid]\ncvar_budget = 0.05\n[period]\nstart = 2024-05-01\nend = 2024-04-01\n", ["is not before"]),
    ],
    ids=[
        "unknown-key",
        "budget-range",
        "bool",
        "turnover-word",
        "band-range",
        "empty",
        "twice",
        "scale-range",
        "scale-p-over-1",
        "unknown-section",
        "no-grid",
        "period-outside",
        "period-key",
        "period-order",
    ],
)
def test_a_bad_grid_names_the_key_and_what_is_valid(
    demo: tuple[BacktestInputs, Path], text: str, words: list[str]
) -> None:
    inputs, _ = demo
    with pytest.raises(ConfigError) as err:
        parse_grid(tomllib.loads(text), inputs)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_the_cli_runs_a_sweep_and_refuses_a_bad_grid(
    demo_config: Callable[..., Path], tmp_path: Path, cluster: object
) -> None:
    config = demo_config()
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    res = run(
        "sweep", "--config", str(config), "--grid", str(grid), "--out", str(out), "--workers", "2", "--json"
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [c["cell"] for c in data["cells"]] == ["c0000", "c0001", "c0002", "c0003"] and data["failed"] == []
    assert "4 cells in" in res.stderr and "2 local worker processes" in res.stderr
    assert sorted(p.name for p in (out / "cells").iterdir()) == [f"c000{i}.json" for i in range(4)]
    # the same grid on the cluster, through --cluster, writes the same table; the folder from
    # AGGREGATOR_SWEEP_DIR, as the image sets it
    out2 = tmp_path / "out2"
    address = cluster.scheduler.address  # type: ignore[attr-defined]
    res = run(
        "sweep",
        "--config",
        str(config),
        "--grid",
        str(grid),
        "--cluster",
        address,
        env={"AGGREGATOR_SWEEP_DIR": str(out2)},
    )
    assert res.returncode == 0, res.stderr
    assert "c0003" in res.stdout and "Dask cluster" in res.stderr
    assert (out2 / "sweep.csv").read_bytes() == (out / "sweep.csv").read_bytes()
    # a bad grid: exit 3, the key and what is valid, nothing run
    grid.write_text("[grid]\nlambda = [0.05]\n")
    res = run("sweep", "--config", str(config), "--grid", str(grid), "--out", str(tmp_path / "bad"))
    assert res.returncode == 3, res.stderr
    assert "unknown grid key(s) ['lambda']" in res.stderr and "risk_aversion" in res.stderr
    assert not (tmp_path / "bad").exists()
    # no scheduler there: exit 3 naming --cluster
    grid.write_text(GRID)
    unreached = tmp_path / "unreached"
    res = run(
        "sweep",
        "--config",
        str(config),
        "--grid",
        str(grid),
        "-o",
        str(unreached),
        "--cluster",
        "tcp://127.0.0.1:9",
    )
    assert res.returncode == 3, res.stderr
    assert "--cluster tcp://127.0.0.1:9: no Dask scheduler answered" in res.stderr
    assert not unreached.exists()


def test_a_cell_varies_the_inputs_as_the_config_edited_by_hand_would(
    demo: tuple[BacktestInputs, Path],
) -> None:
    """The sweep varies the inputs built at the edge, not the config: a cell with every axis set gives the inputs
    the edge builds from the config with the same values written into [limits], [rates], the risk nodes and
    [backtest] (the route the sweep took before it stopped reading `Settings`)."""
    _, path = demo
    settings = load_settings(path.parent / "config" / "demo.toml")
    text = (
        "[period]\nstart = 2024-04-01\nend = 2024-05-12\n[grid]\ncvar_budget = 0.07\nrisk_aversion = 0.2\n"
        "window_days = 7\ntrade_cost_multiple = 3\nhorizon_days = 180\nmax_turnover = 0.5\nprior_scale = 2\n"
    )
    grid = parse_grid(tomllib.loads(text), inputs_from_settings(settings))
    (cell,) = grid.cells()
    got = cell_inputs(inputs_from_settings(settings), grid, cell)

    limits = settings.limits.model_dump(exclude_unset=True)
    limits.pop("tail_weight", None)
    changes = {"cvar_budget": 0.07, "risk_aversion": 0.2, "trade_cost_multiple": 3.0}
    changes |= {"horizon_days": 180.0, "max_turnover": 0.5}
    assert settings.backtest is not None
    by_hand = settings.model_copy(
        update={
            "limits": type(settings.limits).model_validate(limits | changes),
            "rates": settings.rates.model_copy(update={"window_days": 7.0}),
            "risk_nodes": tuple(n.model_copy(update={"p": n.p * 2}) for n in settings.risk_nodes),
            "backtest": settings.backtest.model_copy(
                update={
                    "start": grid.start,
                    "end": grid.end,
                    "fixed": {},
                    "risk_aversions": (),
                    "optimizers": (),
                }
            ),
        }
    )
    want = inputs_from_settings(by_hand)
    assert got.universe.model_dump() == want.universe.model_dump()
    assert [n.p for n in got.universe.nodes] == [2 * n.p for n in settings.risk_nodes]
    assert got.limits.model_dump() == want.limits.model_dump() and got.limits.tail_weight is None
    assert got.rule == want.rule and got.window_days == 7.0
    assert got.backtest is not None and want.backtest is not None
    assert got.backtest.model_dump() == want.backtest.model_dump()
    assert (got.holdings_eth, got.components, got.plausible, got.static) == (
        want.holdings_eth,
        want.components,
        want.plausible,
        want.static,
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"junk = " + b"[" * 50_000 + b"]" * 50_000 + b"\n", "nested too deeply"),  # was a RecursionError
        (b"junk = " + b"[" * 40 + b"]" * 40 + b"\n", "is nested more than 32 levels"),
        (b"[grid]\ncvar_budget = [0.05]\n# caf\xe9\n", "not UTF-8 (byte 0xe9 at line 3)"),
        (b"[grid\n", "not valid TOML"),
    ],
    ids=["50k-deep", "40-deep", "latin-1", "not-toml"],
)
def test_a_grid_file_no_operator_writes_is_a_config_error(
    demo: tuple[BacktestInputs, Path], tmp_path: Path, body: bytes, words: str
) -> None:
    inputs, _ = demo
    grid = tmp_path / "grid.toml"
    grid.write_bytes(body)
    with pytest.raises(ConfigError) as err:
        load_grid(grid, inputs)
    assert str(grid) in str(err.value) and words in str(err.value), str(err.value)
