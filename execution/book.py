"""The book from chain, as pure functions: which calls read what an address holds, and what their answers mean
(issue #16). The transport (JSON-RPC batches at one block) is the caller's; here are only the calls, encoded and
decoded with eth-abi, and the arithmetic.

Read in two rounds at one block: the balances and rates first, then what needs their answers (the ETH value of
EigenLayer shares, the status of each pending Lido withdrawal request). Covered: ETH, stETH and wstETH (Lido,
wstETH at `stEthPerToken`), rETH (at `getExchangeRate`), cbETH and wBETH (at `exchangeRate`), weETH (at
`getRate`), ezETH (at Renzo's rate provider `getRate`), rsETH (at Kelp's LRTOracle `rsETHPrice`), stETH restaked
in EigenLayer's stETH strategy, Lido withdrawal requests not yet claimed (capital in flight from lido-steth to eth)
and EigenLayer withdrawals queued by the address (in flight from eigenlayer-steth to lido-steth, due
`minWithdrawalDelayBlocks()` after the block they were queued in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak

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
    ROCKET_DEPOSIT_POOL,
    ROCKET_STORAGE,
    RSETH,
    STETH,
    WBETH,
    WEETH,
    WSTETH,
    checksum_address,
    selector,
)

WEI = 10**18
ROCKET_DEPOSIT_POOL_KEY = keccak(b"contract.address" + ROCKET_DEPOSIT_POOL.encode())
"""RocketStorage's key of the deposit pool's address: keccak256(abi.encodePacked("contract.address", name))."""
MAX_REQUESTS = 1000
"""Pending Lido withdrawal requests (and queued EigenLayer withdrawals) read at most (a treasury has a handful)."""
SECONDS_PER_BLOCK = 12
"""Ethereum's slot time since the merge: an EigenLayer withdrawal's arrival in days is its blocks left × 12 s."""


@dataclass(frozen=True)
class RateToken:
    """A token worth an exchange rate: the venue it is, its balance's contract and where its rate (ETH per token,
    1e18-scaled) is read."""

    venue: str
    token: str
    address: str
    rate_contract: str
    rate_function: str


RATE_TOKENS = (
    RateToken("coinbase-cbeth", "cbETH", CBETH, CBETH, "exchangeRate"),
    RateToken("binance-wbeth", "wBETH", WBETH, WBETH, "exchangeRate"),
    RateToken("etherfi-weeth", "weETH", WEETH, WEETH, "getRate"),
    RateToken("renzo-ezeth", "ezETH", EZETH, EZETH_RATE_PROVIDER, "getRate"),
    RateToken("kelp-rseth", "rsETH", RSETH, KELP_ORACLE, "rsETHPrice"),
)
"""The liquid (re)staking tokens read beside Lido's and Rocket Pool's (docs/execution.md, "The book from chain")."""
QUEUED_WITHDRAWALS = (
    "(address,address,address,uint256,uint32,address[],uint256[])[]",
    "uint256[][]",
)
"""DelegationManager `getQueuedWithdrawals(address)` since the slashing release: the withdrawals (staker,
delegatedTo, withdrawer, nonce, startBlock, strategies, scaledShares) and the shares each will pay out."""


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
        EthCall(
            "eigen_queued",
            EIGEN_DELEGATION_MANAGER,
            selector("getQueuedWithdrawals(address)") + encode(["address"], [address]).hex(),
            QUEUED_WITHDRAWALS,
        ),
        _call(
            "eigen_delay_blocks",
            EIGEN_DELEGATION_MANAGER,
            "minWithdrawalDelayBlocks",
            (),
            (),
            returns="uint256",
        ),
        *(
            call
            for t in RATE_TOKENS
            for call in (
                _call(t.venue, t.address, "balanceOf", ("address",), (address,), returns="uint256"),
                _call(f"rate:{t.venue}", t.rate_contract, t.rate_function, (), (), returns="uint256"),
            )
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
        values = decode(list(call.returns), raw)
        return values[0] if len(values) == 1 else values
    except (ValueError, DecodingError) as exc:
        raise ChainAnswerError(
            f"{call.key} ({call.to}): return data does not decode as {','.join(call.returns)} ({exc}); "
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
    """Capital in flight: a Lido withdrawal request not yet claimed (`request_id`, `requested_at` unix time), or
    an EigenLayer withdrawal queued and not completed (`nonce`, `due_block`, `days_left` at 12 s a block).
    `finalized`: it can be claimed (completed) now."""

    from_venue: str
    to_venue: str
    eth: float
    finalized: bool
    request_id: int | None = None
    requested_at: int | None = None
    nonce: int | None = None
    due_block: int | None = None
    days_left: float | None = None


@dataclass(frozen=True)
class ChainBook:
    address: str
    block: int
    positions: list[Position]
    pending: list[Pending] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)  # venue → rate, as execution.calls.RATE_KEYS
    resolved: dict[str, str] = field(default_factory=dict)  # registry name → address
    unvalued: list[str] = field(default_factory=list)  # what was read but could not be valued, and why

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
            "unvalued": self.unvalued,
        }


RATE_RANGE = (0.5, 2.0)
"""Every exchange rate read (ETH or stETH per token or share) must lie here: a rate outside is a broken answer
(an oracle reset to 0, a wrong contract), never a book to plan from."""


def _check_rates(answers: Mapping[str, Any]) -> None:
    keys = ["steth_per_wsteth", "eth_per_reth", "eigen_steth_rate", *(f"rate:{t.venue}" for t in RATE_TOKENS)]
    low, high = RATE_RANGE
    for key in keys:
        rate = answers[key] / WEI
        if not low <= rate <= high:
            raise ChainAnswerError(
                f"{key}: rate {rate:g} is outside {low:g}–{high:g} (ETH per token, 1e18-scaled on chain); "
                "a broken answer, not a book"
            )


def assemble(address: str, block: int, balance_wei: int, answers: Mapping[str, Any]) -> ChainBook:
    """The book from the decoded answers of both rounds (ChainAnswerError when a rate is not plausible)."""
    _check_rates(answers)
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
    positions += [
        Position(
            t.venue,
            t.token,
            answers[t.venue] / WEI,
            answers[t.venue] / WEI * answers[f"rate:{t.venue}"] / WEI,
        )
        for t in RATE_TOKENS
    ]
    pending = [
        Pending(
            "lido-steth",
            "eth",
            status[0] / WEI,
            finalized=bool(status[4]),
            request_id=request_id,
            requested_at=int(status[3]),
        )
        for request_id, status in zip(answers["lido_requests"], answers.get("lido_statuses", ()), strict=True)
        if not status[5]  # claimed requests are no longer in flight
    ]
    eigen_rate = answers["eigen_steth_rate"] / WEI
    queued, unvalued = _queued(block, answers, eigen_rate)
    rates = {
        "rocketpool-reth": eth_per_reth,
        "eigenlayer-steth": eigen_rate,
        "kelp-rseth": answers["rate:kelp-rseth"] / WEI,
    }
    pool = str(answers["rocket_deposit_pool"])
    resolved = {} if int(pool, 16) == 0 else {ROCKET_DEPOSIT_POOL: pool}
    return ChainBook(
        address, block, [p for p in positions if p.tokens > 0], pending + queued, rates, resolved, unvalued
    )


def _queued(block: int, answers: Mapping[str, Any], eigen_rate: float) -> tuple[list[Pending], list[str]]:
    """EigenLayer withdrawals queued by the address, in flight to lido-steth (stETH-strategy shares at the
    strategy's rate); a withdrawal of another strategy is named in `unvalued`, not guessed."""
    withdrawals, shares = answers["eigen_queued"]
    if len(withdrawals) != len(shares) or len(withdrawals) > MAX_REQUESTS:
        raise ChainAnswerError(
            f"eigen_queued ({EIGEN_DELEGATION_MANAGER}): {len(withdrawals)} withdrawals with {len(shares)} share "
            f"lists; expected as many of each, at most {MAX_REQUESTS}"
        )
    delay = int(answers["eigen_delay_blocks"])
    pending: list[Pending] = []
    unvalued: list[str] = []
    for withdrawal, paid in zip(withdrawals, shares, strict=True):
        nonce, start, strategies = int(withdrawal[3]), int(withdrawal[4]), list(withdrawal[5])
        if len(strategies) != len(paid):
            raise ChainAnswerError(
                f"eigen_queued ({EIGEN_DELEGATION_MANAGER}): withdrawal nonce {nonce} names {len(strategies)} "
                f"strategies with {len(paid)} share amounts"
            )
        due = start + delay
        for strategy, amount in zip(strategies, paid, strict=True):
            if str(strategy).lower() != EIGEN_STETH_STRATEGY.lower():
                unvalued.append(
                    f"EigenLayer withdrawal nonce {nonce}: {amount / WEI:,.6f} shares of strategy {checksum_address(str(strategy))}, "
                    "which the book does not value (only the stETH strategy is read)"
                )
                continue
            pending.append(
                Pending(
                    "eigenlayer-steth",
                    "lido-steth",
                    amount / WEI * eigen_rate,
                    finalized=block >= due,
                    nonce=nonce,
                    due_block=due,
                    days_left=max(0, due - block) * SECONDS_PER_BLOCK / 86_400,
                )
            )
    return pending, unvalued
