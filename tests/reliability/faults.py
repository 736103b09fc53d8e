"""A source's answer for a scripted fault, from its recorded payload: shared by the flapping test and the soak."""

from __future__ import annotations

import json

from tests.adapters.cases import FIXTURES, Case
from tests.adapters.test_faults import _get, _set
from tests.fixture_server import Reply

FAULTS = ("up", "down", "slow", "garbled", "absurd")
FAILING = frozenset(
    {"down", "slow", "garbled"}
)  # the source fails; "absurd" parses and is rejected by validation
SLOW_SECONDS = (
    1.2  # longer than the timeouts the flapping test (0.6 s) and the soak (0.2 s) give their sources
)


def scripted_reply(case: Case, fault: str) -> Reply:
    """up: the recording; down: 503; slow: the recording after SLOW_SECONDS; garbled: its first half;
    absurd: the quoted number × 100."""
    body = (FIXTURES / case.fixture).read_bytes()
    if fault == "down":
        return Reply(b'{"error": "unavailable"}', status=503)
    if fault == "slow":
        return Reply(body, delay=SLOW_SECONDS)
    if fault == "garbled":
        return Reply(body[: len(body) // 2])
    if fault == "absurd":
        doc = json.loads(body)
        big = float(_get(doc, case.value_path)) * 100
        return Reply(json.dumps(_set(doc, case.value_path, str(big) if case.string_valued else big)).encode())
    if fault != "up":
        raise ValueError(f"unknown fault {fault!r}; valid: {FAULTS}")
    return Reply(body)
