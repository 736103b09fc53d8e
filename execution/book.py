"""The book from chain, as pure functions: which calls read what an address holds, and what their answers mean
(issue #16). The transport (JSON-RPC batches at one block) is the caller's; here are only the calls, encoded and
decoded with eth-abi, and the arithmetic.

Read in two rounds at one block: the balances and rates first, then what needs their answers (the ETH value of
EigenLayer shares, the status of each pending Lido withdrawal request). Covered: ETH, stETH and wstETH (Lido,
wstETH at `stEthPerToken`), rETH (at `getExchangeRate`), stETH restaked in EigenLayer's stETH strategy, and Lido
withdrawal requests not yet claimed (capital in flight from lido-steth to eth). Other tokens are not read yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak

from execution.calls import (
    EIGEN_STETH_STRATEGY,
    EIGEN_STRATEGY_MANAGER,
    LIDO_WITHDRAWAL_QUEUE,
    RETH,
    ROCKET_DEPOSIT_POOL,
    ROCKET_STORAGE,
    STETH,
    WSTETH,
    selector,
)

WEI = 10**18
ROCKET_DEPOSIT_POOL_KEY = keccak(b"contract.address" + ROCKET_DEPOSIT_POOL.encode())
"""RocketStorage's key of the deposit pool's address: keccak256(abi.encodePacked("contract.address", name))."""
MAX_REQUESTS = 1000
"""Pending Lido withdrawal requests read at most (a treasury has a handful)."""


class ChainAnswerError(ValueError):
    """An answer that does not decode as the call's return type: names the call and what came back."""


@dataclass(frozen=True)
class EthCall:
    """One `eth_call`: a key naming it, the contract, the calldata and the return types to decode."""

    key: str
    to: str
    data: str
    returns: tuple[str, ...]


def _call(
    key: str, to: str, name: str, types: tuple[str, ...], args: tuple[Any, ...], *, returns: str
) -> EthCall:
    data = selector(f"{name}({','.join(types)})") + encode(list(types), list(args)).hex()
    return EthCall(key, to, data, (returns,))


def first_round(address: str) -> list[EthCall]:
    """The calls that need nothing but the address (ETH itself is `eth_getBalance`, read beside them)."""
    return [
        _call("steth", STETH, "balanceOf", ("address",), (address,), returns="uint256"),
        _call("wsteth", WSTETH, "balanceOf", ("address",), (address,), returns="uint256"),
        _call("steth_per_wsteth", WSTETH, "stEthPerToken", (), (), returns="uint256"),
        _call("reth", RETH, "balanceOf", ("address",), (address,), returns="uint256"),
        _call("eth_per_reth", RETH, "getExchangeRate", (), (), returns="uint256"),
        _call(
            "eigen_steth_shares",
            EIGEN_STRATEGY_MANAGER,
            "stakerDepositShares",
            ("address", "address"),
            (address, EIGEN_STETH_STRATEGY),
            returns="uint256",
        ),
        _call(
            "rocket_deposit_pool",
            ROCKET_STORAGE,
            "getAddress",
            ("bytes32",),
            (ROCKET_DEPOSIT_POOL_KEY,),
            returns="address",
        ),
        _call(
            "lido_requests",
            LIDO_WITHDRAWAL_QUEUE,
            "getWithdrawalRequests",
            ("address",),
            (address,),
            returns="uint256[]",
        ),
    ]


def second_round(first: Mapping[str, Any]) -> list[EthCall]:
    """The calls that need the first round's answers."""
    calls = [
        _call(
            "eigen_steth_rate",
            EIGEN_STETH_STRATEGY,
            "sharesToUnderlyingView",
            ("uint256",),
            (WEI,),
            returns="uint256",
        ),
        _call(
            "eigen_steth_underlying",
            EIGEN_STETH_STRATEGY,
            "sharesToUnderlyingView",
            ("uint256",),
            (first["eigen_steth_shares"],),
            returns="uint256",
        ),
    ]
    ids = list(first["lido_requests"])
    if len(ids) > MAX_REQUESTS:
        raise ChainAnswerError(
            f"getWithdrawalRequests: {len(ids)} pending requests, more than {MAX_REQUESTS}"
        )
    if ids:
        calls.append(
            _call(
                "lido_statuses",
                LIDO_WITHDRAWAL_QUEUE,
                "getWithdrawalStatus",
                ("uint256[]",),
                (ids,),
                returns="(uint256,uint256,address,uint256,bool,bool)[]",
            )
        )
    return calls


def decode_answer(call: EthCall, result: object) -> Any:
    """The decoded value of one `eth_call` result (ChainAnswerError naming the call when it does not decode)."""
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ChainAnswerError(
            f"{call.key} ({call.to}): expected 0x-hex return data, got {str(result)[:80]!r}"
        )
    try:
        raw = bytes.fromhex(result[2:])
        return decode(list(call.returns), raw)[0]
    except (ValueError, DecodingError) as exc:
        raise ChainAnswerError(
            f"{call.key} ({call.to}): return data does not decode as {call.returns[0]} ({exc}); "
            f"{len(result) // 2 - 1} bytes came back"
        ) from exc


@dataclass(frozen=True)
class Position:
    venue: str
    token: str
    tokens: float
    eth: float


@dataclass(frozen=True)
class Pending:
    """Capital in flight: a Lido withdrawal request not yet claimed."""

    from_venue: str
    to_venue: str
    eth: float
    request_id: int
    finalized: bool
    requested_at: int  # unix time


@dataclass(frozen=True)
class ChainBook:
    address: str
    block: int
    positions: list[Position]
    pending: list[Pending] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)  # venue → rate, as execution.calls.RATE_KEYS
    resolved: dict[str, str] = field(default_factory=dict)  # registry name → address

    def holdings_eth(self) -> dict[str, float]:
        """ETH per venue, settled positions only."""
        out: dict[str, float] = {}
        for p in self.positions:
            out[p.venue] = out.get(p.venue, 0.0) + p.eth
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "source": f"chain at block {self.block}",
            "address": self.address,
            "block": self.block,
            "positions": [vars(p) for p in self.positions],
            "in_flight": [vars(p) for p in self.pending],
            "holdings_eth": self.holdings_eth(),
            "rates": self.rates,
            "resolved": self.resolved,
        }


def assemble(address: str, block: int, balance_wei: int, answers: Mapping[str, Any]) -> ChainBook:
    """The book from the decoded answers of both rounds."""
    steth_per_wsteth = answers["steth_per_wsteth"] / WEI
    eth_per_reth = answers["eth_per_reth"] / WEI
    positions = [
        Position("eth", "ETH", balance_wei / WEI, balance_wei / WEI),
        Position("lido-steth", "stETH", answers["steth"] / WEI, answers["steth"] / WEI),
        Position("lido-steth", "wstETH", answers["wsteth"] / WEI, answers["wsteth"] / WEI * steth_per_wsteth),
        Position("rocketpool-reth", "rETH", answers["reth"] / WEI, answers["reth"] / WEI * eth_per_reth),
        Position(
            "eigenlayer-steth",
            "EigenLayer stETH-strategy shares",
            answers["eigen_steth_shares"] / WEI,
            answers["eigen_steth_underlying"] / WEI,
        ),
    ]
    pending = [
        Pending("lido-steth", "eth", status[0] / WEI, request_id, bool(status[4]), int(status[3]))
        for request_id, status in zip(answers["lido_requests"], answers.get("lido_statuses", ()), strict=True)
        if not status[5]  # claimed requests are no longer in flight
    ]
    rates = {
        "rocketpool-reth": eth_per_reth,
        "eigenlayer-steth": answers["eigen_steth_rate"] / WEI,
    }
    pool = str(answers["rocket_deposit_pool"])
    resolved = {} if int(pool, 16) == 0 else {ROCKET_DEPOSIT_POOL: pool}
    return ChainBook(address, block, [p for p in positions if p.tokens > 0], pending, rates, resolved)
