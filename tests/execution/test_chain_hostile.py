"""A hostile JSON-RPC endpoint for the chain book reader (issue #16), as tests/adapters/test_hostile.py does for the
rate sources: a slow drip, an oversized body (declared or not), a gzip bomb, an endless chunked stream and deeply
nested JSON each end as a SourceError naming why, within the deadline plus a margin and a bounded growth of the
process's peak RSS; and the service then plans from the book it expected (no book change).

The reader's cap is its own (`MAX_ANSWER_BYTES`, 4 MiB); the deadline is `read_book`'s timeout, 1 s here. The
server drips a byte every 0.1 s, so only the deadline can end a slow answer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from aggregator.core.errors import SourceError
from aggregator.service import Service
from aggregator.service.chain import MAX_ANSWER_BYTES, read_book
from aggregator.settings import load_settings
from tests.adapters.test_hostile import _peak_growth_start, _status
from tests.conftest import copy_demo
from tests.execution.test_chain_book import TREASURY
from tests.hostile_server import HostileServer

DEADLINE = 1.0
MARGIN = 3.0  # a loaded 2-core machine
RSS_CAP_MB = 40.0  # the server sends up to 32 MiB (decompressed): buffering it would show
EXPECTED = {
    "nested": "nested deeper than max_json_depth",
    "huge": f"larger than max_response_bytes {MAX_ANSWER_BYTES}",
    "declared_huge": f"larger than max_response_bytes {MAX_ANSWER_BYTES}",
    "endless": f"larger than max_response_bytes {MAX_ANSWER_BYTES}",
    "gzip_bomb": f"larger than max_response_bytes {MAX_ANSWER_BYTES}",
    "slow_body": f"deadline of {DEADLINE:g}s exceeded",
    "slow_status": f"deadline of {DEADLINE:g}s exceeded",
}


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
def test_the_chain_reader_survives_a_hostile_endpoint(behaviour: str) -> None:
    before = _peak_growth_start()
    with HostileServer(behaviour) as server:
        start = time.monotonic()
        with pytest.raises(SourceError) as caught:
            read_book(f"{server.url}/rpc", TREASURY, timeout=DEADLINE)
        elapsed = time.monotonic() - start
        requests = server.requests
    assert EXPECTED[behaviour] in str(caught.value)
    assert elapsed < DEADLINE + MARGIN, f"{behaviour}: {elapsed:.1f}s"
    assert requests == 1  # the block number's request failed: nothing after it, nothing retried
    growth = _status("VmHWM") - before
    assert growth < RSS_CAP_MB, f"{behaviour}: peak RSS grew {growth:.1f} MiB"


def test_a_hostile_endpoint_changes_no_book(tmp_path: Path) -> None:
    """The cycle plans from the expected book (the demo's 10,000 ETH) and `aggregator book` has nothing to show."""
    with HostileServer("endless") as server:
        config = copy_demo(
            tmp_path,
            lambda t: t.replace(
                "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
            ),
        )
        service = Service(load_settings(config))
        with capture_logs() as logs:
            plan = service.rebalance("cli").plan
        with pytest.raises(SourceError, match="larger than max_response_bytes"):
            service.book_report()
    assert plan.portfolio_eth == pytest.approx(10_000.0)
    [failed] = [e for e in logs if e["event"] == "chain_book_unavailable"]
    assert "larger than max_response_bytes" in failed["error"]
    assert not any(e["event"] == "book_drift" for e in logs)
