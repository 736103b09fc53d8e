"""The CLI an operator lives with, as real subprocesses: the proposal id printed by `rebalance`, whole ids in
`history`, `show latest` and `show` by a unique start of an id, and one-line errors for a busy port and a
database directory that cannot exist."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.aggregator.test_cli_imports import HEAVY, loaded
from tests.conftest import AGGREGATOR, clean_env, free_port


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGGREGATOR), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env({"COLUMNS": "60", **(env or {})}),
        check=False,
    )


def _id_from(out: str) -> str:
    line = next(x for x in out.splitlines() if x.startswith("proposal "))
    return line.split()[1]


def test_rebalance_prints_its_id_and_show_finds_it_by_prefix_and_latest(
    demo_config: Callable[..., Path],
) -> None:
    config = str(demo_config())
    first = _cli("rebalance", "--config", config)
    assert first.returncode == 0, first.stderr
    first_id = _id_from(first.stdout)
    assert f"aggregator show {first_id}" in first.stdout
    second = _cli("rebalance", "--json", "--config", config)
    assert second.returncode == 0, second.stderr
    second_id = _id_from(second.stderr)  # stdout stays the plan's JSON

    history = _cli("history", "--json", "--config", config)
    ids = [row["id"] for row in json.loads(history.stdout)]
    assert ids == [second_id, first_id]  # whole ids, newest first

    table = _cli("history", "--config", config)  # a 60-column terminal: the id column still holds whole ids
    assert first_id in table.stdout and second_id in table.stdout

    latest = _cli("show", "latest", "--json", "--config", config)
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout)["proposal"]["id"] == second_id

    n = next(i for i, (a, b) in enumerate(zip(first_id, second_id, strict=True)) if a != b)
    common = first_id[:n]
    unique = first_id[: len(common) + 1]
    by_prefix = _cli("show", unique, "--json", "--config", config)
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert json.loads(by_prefix.stdout)["proposal"]["id"] == first_id

    shared = _cli("show", common, "--config", config)
    assert shared.returncode == 2
    assert (
        "give more characters" in shared.stderr and first_id in shared.stderr and second_id in shared.stderr
    )

    unknown = _cli("show", "zz-no-such", "--config", config)
    assert unknown.returncode == 7 and "no proposal 'zz-no-such'" in unknown.stderr


def test_show_latest_with_no_proposal_says_so(demo_config: Callable[..., Path]) -> None:
    done = _cli("show", "latest", "--config", str(demo_config()))
    assert done.returncode == 7
    # the last line: opening the store logs `store_claimed` (a JSON log line) on stderr first
    assert done.stderr.strip().splitlines()[-1] == "no proposals yet: `aggregator rebalance` makes one"


def test_a_database_directory_that_cannot_exist_is_one_line(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's directory should be")
    url = f"sqlite:///{blocker}/db/aggregator.sqlite"
    done = _cli("history", "--config", str(demo_config()), env={"AGGREGATOR_DATABASE__URL": url})
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configuration error: database.url = ")
    assert f"its directory '{blocker}/db' does not exist and cannot be created" in lines[0]


def test_a_busy_port_is_one_line(demo_config: Callable[..., Path]) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = _cli(
            "run",
            "--config",
            str(demo_config()),
            env={"AGGREGATOR_API__PORT": str(port), "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "false"},
        )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"api.port = {port}: the HTTP API cannot listen there (the port is in use" in lines[0]


def test_version_answers_without_the_heavy_stack() -> None:
    top, code, stderr = loaded(["--version"], {})
    assert code == "0", stderr
    assert not top & set(HEAVY)
    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == "aggregator 0.1.0"
