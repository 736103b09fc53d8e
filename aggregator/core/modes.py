"""What a proposal did to the book, decided in one place: the store's `mode` column, the metrics' `mode` label and
the webhook's `mode` field all read it from here (issue 19: they disagreed for a hold under `--apply`)."""

from __future__ import annotations

from typing import Literal

Mode = Literal["applied", "dry_run"]


def proposal_mode(status: str, apply: bool) -> Mode:
    """ "applied" only when the cycle was asked to apply and the plan rebalances: a hold changes nothing, so it is a
    dry run whatever was asked."""
    return "applied" if apply and status == "rebalance" else "dry_run"


__all__ = ["Mode", "proposal_mode"]
