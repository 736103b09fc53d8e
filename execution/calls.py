"""Contract calls: what a plan event is on chain, encoded with eth-abi (issue #16).

The addresses and call shapes are in docs/execution.md (with where each comes from). A call is built only where
the route is known and every number it needs is known at planning time; anything else is a `Manual` step saying
exactly what a person must do and why it could not be encoded. Nothing is ever dropped.

Amounts are token units (wei, 18 decimals). ETH and stETH are 1:1; a token worth its exchange rate (wstETH, rETH,
EigenLayer strategy shares, rsETH …) is converted at the rate read at planning time, and where the result is only
a lower bound (what a deposit returns) the stated slippage allowance is taken off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from eth_abi.abi import encode
from eth_hash.auto import keccak

WEI = 10**18
LIDO_MAX_REQUEST_WEI = 1000 * WEI
"""Lido's WithdrawalQueueERC721 takes at most 1,000 stETH per request entry."""

# Ethereum mainnet (docs/execution.md §2). Registry-resolved addresses are not pinned here: see `REGISTRY`.
STETH = "0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84"
WSTETH = "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"
LIDO_WITHDRAWAL_QUEUE = "0x889edC2eDab5f40e902b864aD4d7AdE8E412F9B1"
RETH = "0xae78736Cd615f374D3085123A210448E74Fc6393"
ROCKET_STORAGE = "0x1d8f8f00cfa6758d7bE78336684788Fb0ee0Fa46"
EIGEN_STRATEGY_MANAGER = "0x858646372CC42E1A627fcE94aa7A7033e7CF075A"
EIGEN_DELEGATION_MANAGER = "0x39053D51B77DC0d36036Fc1fCc8Cb819df8Ef37A"
EIGEN_STETH_STRATEGY = "0x93c4b944D05dfe6df7645A86cd2206016c51564D"
ETHERFI_LIQUIDITY_POOL = "0x308861A430be4cce5502d0A12724771Fc6DaF216"
EETH = "0x35fA164735182de50811E8e2E824cFb9B6118ac2"
WEETH = "0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee"
RENZO_RESTAKE_MANAGER = "0x74a09653A083691711cF8215a6ab074BB4e99ef5"
KELP_DEPOSIT_POOL = "0x036676389e48133B63a802f8635AD39E752D375D"
CBETH = "0xBe9895146f7AF43049ca1c1AE358B0541Ea49704"
WBETH = "0xa2E3356610840701BDf5611a53974510Ae27E2e1"
EZETH = "0xbf5495Efe5DB9ce00f80364C8B423567e58d2110"
EZETH_RATE_PROVIDER = "0x387dBc0fB00b26fb085aa658527D5BE98302c84C"
RSETH = "0xA1290d69c65A6Fe4DF752f95823fae25cB99e5A7"
KELP_ORACLE = "0x349A73444b1a310BAe67ef67973022020d70020d"

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

ROCKET_DEPOSIT_POOL = "rocketDepositPool"
REGISTRY = {
    ROCKET_DEPOSIT_POOL: f'RocketStorage {ROCKET_STORAGE} getAddress(keccak256("contract.address" ++ '
    '"rocketDepositPool")) (last known 0xDD3f50F8A6CafbE9b31a427582963f465E745AF8; it changes with upgrades)'
}
"""Addresses read from a registry at planning time, never pinned: name → where to read it."""

RATE_KEYS = {
    "rocketpool-reth": "ETH per rETH (rETH getExchangeRate())",
    "kelp-rseth": "ETH per rsETH (LRTOracle rsETHPrice())",
    "eigenlayer-steth": "stETH per EigenLayer stETH-strategy share (strategy sharesToUnderlyingView(1e18) / 1e18)",
}
"""The exchange rates a call may need, by venue: what each is and where it is read."""


def selector(signature: str) -> str:
    """The 4-byte function selector of a canonical signature, as 0x-hex."""
    return "0x" + keccak(signature.encode()).hex()[:8]


def to_wei(amount: float | Decimal) -> int:
    """An amount of 18-decimal tokens as an integer of wei, rounded down (never more than the plan moves)."""
    return int((Decimal(str(amount)) * WEI).to_integral_value(rounding=ROUND_DOWN))


@dataclass(frozen=True)
class Call:
    """One transaction of a batch: `to`, `value` in wei and the function with its arguments."""

    to: str
    name: str
    types: tuple[str, ...]
    args: tuple[object, ...]
    value: int = 0
    note: str = ""

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    @property
    def data(self) -> str:
        return selector(self.signature) + encode(list(self.types), list(self.args)).hex()


@dataclass(frozen=True)
class Manual:
    """A step that cannot be encoded: what to do, and why it is not in the batch."""

    what: str
    why: str


@dataclass(frozen=True)
class Encoded:
    """What one plan event becomes: the calls to sign (in order) and the steps left to people."""

    calls: list[Call] = field(default_factory=list)
    manual: list[Manual] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What encoding needs beyond the plan: the Safe (owner of requests and receiver), the slippage allowance,
    the exchange rates read at planning time (venue → rate, see RATE_KEYS) and registry-resolved addresses."""

    safe: str
    slippage: float = 0.005
    rates: Mapping[str, float] = field(default_factory=dict)
    resolved: Mapping[str, str] = field(default_factory=dict)


def approve(token: str, spender: str, amount: int, note: str) -> Call:
    return Call(token, "approve", ("address", "uint256"), (spender, amount), note=note)


def lido_request_amounts(total: int) -> list[int]:
    """A stETH withdrawal split into request entries of at most 1,000 stETH each."""
    out = [LIDO_MAX_REQUEST_WEI] * (total // LIDO_MAX_REQUEST_WEI)
    if total % LIDO_MAX_REQUEST_WEI:
        out.append(total % LIDO_MAX_REQUEST_WEI)
    return out


def _min_out(amount_eth: float, rate: float, slippage: float) -> int:
    """The least amount of a token worth `rate` ETH each that `amount_eth` must buy, after the slippage allowance."""
    return to_wei(Decimal(str(amount_eth)) / Decimal(str(rate)) * (1 - Decimal(str(slippage))))


Handler = Callable[[float, int, Context], Encoded]
"""A route's encoder: (amount in ETH, the same in wei, context) → the calls and the manual steps."""


def _payable(to: str, name: str, types: tuple[str, ...], args: tuple[object, ...], note: str) -> Handler:
    """One call carrying the ETH as its value (`note` formatted with the amount)."""
    return lambda eth, wei, ctx: Encoded(
        calls=[Call(to, name, types, args, value=wei, note=note.format(eth=eth))]
    )


def _at_rate(venue: str, action: str, build: Callable[[float, float, int, Context], list[Call]]) -> Handler:
    """A route whose token amounts need `venue`'s rate read at planning time: manual when none was given."""

    def handler(eth: float, wei: int, ctx: Context) -> Encoded:
        rate = ctx.rates.get(venue)
        if rate is None:
            return _needs_rate(action, eth, venue)
        return Encoded(calls=build(eth, rate, wei, ctx))

    return handler


def _by_hand(what: str, why: str) -> Handler:
    """A step left to people (`what` formatted with the amount)."""
    return lambda eth, wei, ctx: _manual(what.format(eth=eth), why)


def _lido_request(eth: float, wei: int, ctx: Context) -> Encoded:
    amounts = lido_request_amounts(wei)
    return Encoded(
        calls=[
            approve(STETH, LIDO_WITHDRAWAL_QUEUE, wei, "let Lido's withdrawal queue take the stETH"),
            Call(
                LIDO_WITHDRAWAL_QUEUE,
                "requestWithdrawals",
                ("uint256[]", "address"),
                (amounts, ctx.safe),
                note=f"request the withdrawal of {eth:,.4f} stETH in {len(amounts)} entries of at most "
                "1,000 stETH; each request is an NFT owned by the Safe",
            ),
        ]
    )


def _eigen_queue(eth: float, rate: float, wei: int, ctx: Context) -> list[Call]:
    shares = to_wei(Decimal(str(eth)) / Decimal(str(rate)))
    return [
        Call(
            EIGEN_DELEGATION_MANAGER,
            "queueWithdrawals",
            ("(address[],uint256[],address)[]",),
            ([([EIGEN_STETH_STRATEGY], [shares], ctx.safe)],),
            note=f"queue the withdrawal of {shares / WEI:,.6f} stETH-strategy shares (≈ {eth:,.4f} "
            "stETH at the planning-time rate); the slashing-release shape (docs/execution.md)",
        )
    ]


def _reth_burn(eth: float, rate: float, wei: int, ctx: Context) -> list[Call]:
    reth = to_wei(Decimal(str(eth)) / Decimal(str(rate)))
    return [
        Call(
            RETH,
            "burn",
            ("uint256",),
            (reth,),
            note=f"burn {reth / WEI:,.6f} rETH for ≈ {eth:,.4f} ETH (reverts if the deposit pool "
            "lacks the ETH: then sell on a DEX instead)",
        )
    ]


def _rocket_deposit(eth: float, wei: int, ctx: Context) -> Encoded:
    pool = ctx.resolved.get(ROCKET_DEPOSIT_POOL)
    if pool is None:
        return _manual(
            f"deposit {eth:,.4f} ETH into Rocket Pool: deposit() with that value on the RocketDepositPool",
            f"its address is read from {REGISTRY[ROCKET_DEPOSIT_POOL]}, and was not resolved at planning time",
        )
    return Encoded(calls=[Call(pool, "deposit", (), (), value=wei, note=f"deposit {eth:,.4f} ETH for rETH")])


def _eigen_deposit(eth: float, wei: int, ctx: Context) -> Encoded:
    return Encoded(
        calls=[
            approve(STETH, EIGEN_STRATEGY_MANAGER, wei, "let EigenLayer's StrategyManager take the stETH"),
            Call(
                EIGEN_STRATEGY_MANAGER,
                "depositIntoStrategy",
                ("address", "address", "uint256"),
                (EIGEN_STETH_STRATEGY, STETH, wei),
                note=f"restake {eth:,.4f} stETH in EigenLayer's stETH strategy",
            ),
        ]
    )


EETH_ROUNDING_WEI = 1_000
"""What an ether.fi deposit's eETH balance may fall short of the ETH sent: the LiquidityPool mints shares rounded
down and eETH's balance converts them back rounded down (a few wei); the wrap leaves this much as eETH so that it
cannot revert, and nothing more (a share of the deposit would stay unwrapped, outside the weETH the book reads)."""


def _etherfi_deposit(eth: float, wei: int, ctx: Context) -> Encoded:
    eeth = max(0, wei - EETH_ROUNDING_WEI)
    return Encoded(
        calls=[
            Call(
                ETHERFI_LIQUIDITY_POOL,
                "deposit",
                (),
                (),
                value=wei,
                note=f"deposit {eth:,.4f} ETH with ether.fi for eETH",
            ),
            approve(EETH, WEETH, eeth, "let weETH take the eETH"),
            Call(
                WEETH,
                "wrap",
                ("uint256",),
                (eeth,),
                note=f"wrap {eeth / WEI:,.6f} eETH into weETH (the deposit less {EETH_ROUNDING_WEI:,} wei for "
                "eETH share rounding, which stays as eETH)",
            ),
        ]
    )


def _kelp_deposit(eth: float, rate: float, wei: int, ctx: Context) -> list[Call]:
    least = _min_out(eth, rate, ctx.slippage)
    return [
        Call(
            KELP_DEPOSIT_POOL,
            "depositETH",
            ("uint256", "string"),
            (least, ""),
            value=wei,
            note=f"deposit {eth:,.4f} ETH with Kelp for at least {least / WEI:,.6f} rsETH "
            f"(rate {rate} less {ctx.slippage:.2%})",
        )
    ]


ROUTES: dict[tuple[str, str, str], Handler] = {
    ("deposit", "eth", "lido-steth"): _payable(
        STETH,
        "submit",
        ("address",),
        (ZERO_ADDRESS,),
        "stake {eth:,.4f} ETH with Lido for stETH (no referral)",
    ),
    ("deposit", "eth", "rocketpool-reth"): _rocket_deposit,
    ("deposit", "lido-steth", "eigenlayer-steth"): _eigen_deposit,
    ("deposit", "eth", "etherfi-weeth"): _etherfi_deposit,
    ("deposit", "eth", "renzo-ezeth"): _payable(
        RENZO_RESTAKE_MANAGER,
        "depositETH",
        (),
        (),
        "deposit {eth:,.4f} ETH with Renzo for ezETH (reverts when paused or over its cap)",
    ),
    ("deposit", "eth", "kelp-rseth"): _at_rate("kelp-rseth", "deposit", _kelp_deposit),
    ("request", "lido-steth", "eth"): _lido_request,
    ("claim", "lido-steth", "eth"): _by_hand(
        "claim {eth:,.4f} ETH from Lido's withdrawal queue: claimWithdrawals(requestIds, hints) on "
        + LIDO_WITHDRAWAL_QUEUE,
        "the request ids exist only once the requests are mined (getWithdrawalRequests(safe)), and the hints "
        "come from findCheckpointHints(ids, 1, getLastCheckpointIndex()) once they are finalised",
    ),
    ("request", "eigenlayer-steth", "lido-steth"): _at_rate(
        "eigenlayer-steth", "queue the EigenLayer withdrawal of", _eigen_queue
    ),
    ("claim", "eigenlayer-steth", "lido-steth"): _by_hand(
        "complete the EigenLayer withdrawal of ≈ {eth:,.4f} stETH: completeQueuedWithdrawal(withdrawal, "
        f"[stETH], true) on {EIGEN_DELEGATION_MANAGER}",
        "the withdrawal struct (nonce, startBlock, scaled shares) exists only once the queueing is mined "
        "(getQueuedWithdrawals(safe)); the delay is MIN_WITHDRAWAL_DELAY_BLOCKS",
    ),
    ("request", "rocketpool-reth", "eth"): _at_rate("rocketpool-reth", "burn rETH for", _reth_burn),
    # the burn pays out at once; the queue's day is the wait for deposit-pool liquidity
    ("claim", "rocketpool-reth", "eth"): lambda eth, wei, ctx: Encoded(),
}
"""Every route the planner can encode, by (event kind, from venue, to venue); any other is a manual step."""


def encode_event(kind: str, from_venue: str, to_venue: str, amount_eth: float, ctx: Context) -> Encoded:
    """The calls for one timeline event (`request`, `claim`, `sell`, `deposit`) of `amount_eth`."""
    handler = ROUTES.get((kind, from_venue, to_venue))
    if handler is not None:
        return handler(amount_eth, to_wei(amount_eth), ctx)
    if kind == "deposit":
        return _manual(
            f"deposit {amount_eth:,.4f} ETH worth from {from_venue} into {to_venue}",
            f"no contract route for a deposit from {from_venue} into {to_venue} is known to the planner",
        )
    return _manual(
        f"{kind} {amount_eth:,.4f} ETH worth from {from_venue} to {to_venue}",
        f"no contract route for a {kind} from {from_venue} to {to_venue} is known to the planner"
        + (" (a DEX sale is chosen by whoever signs: route, pool and price)" if kind == "sell" else ""),
    )


def _manual(what: str, why: str) -> Encoded:
    return Encoded(manual=[Manual(what, why)])


def _needs_rate(action: str, amount_eth: float, venue: str) -> Encoded:
    return _manual(
        f"{action} {amount_eth:,.4f} ETH worth of {venue}",
        f"the amount in tokens needs the {RATE_KEYS[venue]} read at planning time, and none was given",
    )


def checksum_address(address: str) -> str:
    """EIP-55 mixed-case form of a 20-byte hex address (ValueError naming it when it is not one)."""
    raw = address.lower().removeprefix("0x")
    if len(raw) != 40 or any(c not in "0123456789abcdef" for c in raw):
        raise ValueError(f"{address!r} is not an address: 0x followed by 40 hex digits")
    digest = keccak(raw.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(raw))


__all__: Sequence[str] = (
    "Call",
    "Context",
    "Encoded",
    "Manual",
    "checksum_address",
    "encode_event",
    "lido_request_amounts",
    "selector",
    "to_wei",
)
