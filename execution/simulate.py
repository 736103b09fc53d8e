"""Simulation before signing (issue #16), the pure half: what each batch call's `eth_call` answer means.

The transport (`aggregator.service.chain.simulate`) sends every call of every day's batch as an `eth_call` from
the Safe's address, with the call's value, at one block (the latest when asked), in one JSON-RPC batch. It never
sends a transaction. Here: the revert reason decoded (`Error(string)`, `Panic(uint256)`, custom errors by selector
where known), and what a revert means for the step.

A separate `eth_call` per transaction starts from the chain as it is: it cannot see what the batch's earlier
calls would have changed. So a revert is:

- **blocked** when nothing earlier in the plan can change it: a day-0 call that no earlier call of its batch
  approves (a paused contract, a full deposit cap, a balance the Safe lacks, a wrong calldata shape);
- **unverified** when it may only be the missing effect of an earlier step: the call's contract was approved by an
  earlier `approve` in the same batch (the allowance is not there yet), or the call is on a later day (it runs after
  claims and deposits that have not happened). Its reason is still shown; simulate again on its day.

Why not a state override for the approvals or Safe's `simulateAndRevert` through MultiSend: an allowance override
needs each token's storage layout (stETH keeps allowances in unstructured storage, eETH in a mapping at a
version-dependent slot), and a MultiSend simulation answers one revert for the whole batch, not the step; the Safe
web app's own simulation of the imported batch covers the sequence, and this check says per step what can be
known for sure before that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError

from execution.calls import Call, selector

ERROR_STRING = "0x08c379a0"
PANIC = "0x4e487b71"
PANICS = {
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop of an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call of a zero internal function",
}
KNOWN_ERRORS = {
    selector(sig): sig
    for sig in (
        # OpenZeppelin 5 (Pausable, ERC-20)
        "EnforcedPause()",
        "ExpectedPause()",
        "ERC20InsufficientBalance(address,uint256,uint256)",
        "ERC20InsufficientAllowance(address,uint256,uint256)",
        # Lido WithdrawalQueue and its PausableUntil
        "RequestAmountTooSmall(uint256)",
        "RequestAmountTooLarge(uint256)",
        "ResumedExpected()",
        "PausedExpected()",
        # EigenLayer (slashing release)
        "CurrentlyPaused()",
        "StrategyNotWhitelisted()",
        "WithdrawalDelayNotElapsed()",
        # Kelp LRTDepositPool, Renzo RestakeManager
        "MaximumDepositLimitReached()",
        "MinimumAmountToReceiveNotMet()",
        "MaxTVLReached()",
        "ContractPaused()",
    )
}
"""Custom errors named by their selector (keccak of the signature); any other selector is shown raw."""


def revert_reason(error: Mapping[str, Any]) -> str:
    """A JSON-RPC error of an `eth_call` as a reason people can read: the decoded revert data where there is any,
    else the node's message."""
    message = str(error.get("message", ""))[:300]
    data = error.get("data")
    if isinstance(data, Mapping):  # some nodes nest it: {"data": {"data": "0x…"}}
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return message or "reverted without a reason"
    head, body = data[:10].lower(), data[10:]
    try:
        raw = bytes.fromhex(body)
        if head == ERROR_STRING:
            return f"Error({decode(['string'], raw)[0]!r})"
        if head == PANIC:
            code = decode(["uint256"], raw)[0]
            return f"Panic(0x{code:x}: {PANICS.get(code, 'unknown panic code')})"
        if head in KNOWN_ERRORS:
            sig = KNOWN_ERRORS[head]
            types = sig[sig.index("(") + 1 : -1]
            args = decode(types.split(","), raw) if types else ()
            return sig.split("(")[0] + "(" + ", ".join(str(a) for a in args) + ")"
    except (ValueError, DecodingError):
        return f"revert data {data[:138]} does not decode as its selector says ({message or 'no message'})"
    return f"custom error {head} (selector not known here), data {data[:138]}"


@dataclass(frozen=True)
class Check:
    """The simulation of one call of a day's batch: `step` is its number in the batch (1-based, as in the batch's
    description), `status` ok, blocked or unverified (see the module's text)."""

    day: int
    step: int
    function: str
    to: str
    status: str
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"step": self.step, "function": self.function, "status": self.status, "reason": self.reason}


def judge(day: int, calls: Sequence[Call], answers: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Each call's check from its `eth_call` answer (a JSON-RPC item with `result` or `error`), in batch order."""
    out: list[Check] = []
    for i, (call, answer) in enumerate(zip(calls, answers, strict=True)):
        step = i + 1
        if "error" not in answer:
            out.append(Check(day, step, call.signature, call.to, "ok"))
            continue
        error = answer["error"]
        reason = revert_reason(error if isinstance(error, Mapping) else {"message": str(error)})
        approvals = [
            j + 1
            for j, earlier in enumerate(calls[:i])
            if earlier.name == "approve" and str(earlier.args[0]).lower() == call.to.lower()
        ]
        if approvals:
            status = "unverified"
            reason += (
                f"; needs the approval of step {approvals[-1]}, which a separate eth_call does not see: the "
                "Safe web app's simulation of the whole batch checks it"
            )
        elif day > 0:
            status = "unverified"
            reason += f"; runs on day {day}, after steps not yet done: simulate again on that day"
        else:
            status = "blocked"
        out.append(Check(day, step, call.signature, call.to, status, reason))
    return out
