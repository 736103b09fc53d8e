"""Safe Transaction Builder batches (issue #16): calldata against independently built encodings, the checksum
against the Transaction Builder's algorithm and a real batch exported by the Safe web app."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from Crypto.Hash import keccak as pycryptodome_keccak

from execution import calls
from execution.calls import (
    EIGEN_DELEGATION_MANAGER,
    EIGEN_STETH_STRATEGY,
    EIGEN_STRATEGY_MANAGER,
    LIDO_WITHDRAWAL_QUEUE,
    STETH,
    Context,
    checksum_address,
    encode_event,
    lido_request_amounts,
)
from execution.safe import batches, checksum, summary
from execution.timeline import schedule
from tests.execution.test_timeline import HOLDINGS, MOVES

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "safe" / "BIP-377.json"
SAFE = "0x1111111111111111111111111111111111111111"
E18 = 10**18


def k256(data: bytes) -> str:
    h = pycryptodome_keccak.new(digest_bits=256)
    h.update(data)
    return h.hexdigest()


def sel(signature: str) -> str:
    return k256(signature.encode())[:8]


def word(n: int) -> str:
    return f"{n:064x}"


def addr(a: str) -> str:
    return a.lower().removeprefix("0x").rjust(64, "0")


def test_selectors_match_the_known_ones() -> None:
    # published selectors (4byte directory), not computed by the code under test
    assert sel("submit(address)") == "a1903eab"
    assert sel("approve(address,uint256)") == "095ea7b3"
    assert sel("depositIntoStrategy(address,address,uint256)") == "e7a050aa"
    assert sel("deposit()") == "d0e30db0"


def test_lido_stake_is_submit_with_the_eth_as_value() -> None:
    [call] = encode_event("deposit", "eth", "lido-steth", 1.5, Context(SAFE)).calls
    assert call.to == STETH
    assert call.value == 15 * 10**17
    assert call.data == "0xa1903eab" + word(0)


def test_lido_withdrawal_is_an_approval_and_requests_of_at_most_1000_steth() -> None:
    encoded = encode_event("request", "lido-steth", "eth", 2500.0, Context(SAFE))
    assert encoded.manual == []
    approval, request = encoded.calls
    assert approval.to == STETH
    assert approval.data == "0x095ea7b3" + addr(LIDO_WITHDRAWAL_QUEUE) + word(2500 * E18)
    assert request.to == LIDO_WITHDRAWAL_QUEUE and request.value == 0
    expected = (
        "0x"
        + sel("requestWithdrawals(uint256[],address)")
        + word(0x40)  # offset of the dynamic array
        + addr(SAFE)  # _owner
        + word(3)  # array length
        + word(1000 * E18)
        + word(1000 * E18)
        + word(500 * E18)
    )
    assert request.data == expected
    assert lido_request_amounts(1000 * E18) == [1000 * E18]
    assert lido_request_amounts(1000 * E18 + 1) == [1000 * E18, 1]


def test_eigenlayer_restake_and_queue_at_the_planning_rate() -> None:
    approval, deposit = encode_event("deposit", "lido-steth", "eigenlayer-steth", 10.0, Context(SAFE)).calls
    assert approval.data == "0x095ea7b3" + addr(EIGEN_STRATEGY_MANAGER) + word(10 * E18)
    assert deposit.data == "0xe7a050aa" + addr(EIGEN_STETH_STRATEGY) + addr(STETH) + word(10 * E18)
    [queue] = encode_event(
        "request", "eigenlayer-steth", "lido-steth", 12.5, Context(SAFE, rates={"eigenlayer-steth": 1.25})
    ).calls
    assert queue.to == EIGEN_DELEGATION_MANAGER
    shares = 10 * E18  # 12.5 stETH at 1.25 stETH a share
    expected = (
        "0x"
        + sel("queueWithdrawals((address[],uint256[],address)[])")
        + word(0x20)  # offset of the params array
        + word(1)  # one QueuedWithdrawalParams
        + word(0x20)  # offset of the (dynamic) tuple within the array
        + word(0x60)  # strategies offset within the tuple
        + word(0xA0)  # depositShares offset
        + addr(SAFE)  # __deprecated_withdrawer
        + word(1)
        + addr(EIGEN_STETH_STRATEGY)
        + word(1)
        + word(shares)
    )
    assert queue.data == expected


def test_without_a_rate_or_a_route_a_step_is_manual_with_its_reason() -> None:
    needs_rate = encode_event("request", "eigenlayer-steth", "lido-steth", 5.0, Context(SAFE))
    assert needs_rate.calls == [] and "sharesToUnderlyingView" in needs_rate.manual[0].why
    unknown = encode_event("deposit", "lido-steth", "karak-steth", 5.0, Context(SAFE))
    assert unknown.calls == [] and "no contract route" in unknown.manual[0].why


def test_checksum_matches_a_batch_exported_by_the_safe_web_app() -> None:
    real = json.loads(FIXTURE.read_text())
    assert checksum(real) == real["meta"]["checksum"]
    tampered = {**real, "createdAt": real["createdAt"] + 1}
    assert checksum(tampered) != real["meta"]["checksum"]


def test_checksum_is_the_documented_algorithm() -> None:
    batch = {
        "version": "1.0",
        "chainId": "1",
        "createdAt": 5,
        "meta": {"name": "ignored", "description": "d", "checksum": "0xold"},
        "transactions": [{"to": "0xab", "value": "0", "data": "0x01", "contractMethod": None}],
    }
    by_hand = (
        '{["chainId","createdAt","meta","transactions","version"]"1",5,'
        '{["description","name"]"d",null,},'
        '[{["contractMethod","data","to","value"]null,"0x01","0xab","0",}],'
        '"1.0",}'
    )
    assert checksum(batch) == "0x" + k256(by_hand.encode())


def test_a_batch_per_date_with_the_plan_id_and_manual_steps_listed() -> None:
    timeline = schedule(MOVES, HOLDINGS, date(2026, 9, 14))
    ctx = Context(SAFE, rates={"eigenlayer-steth": 1.0})
    days = batches(timeline, "abc123", ctx, datetime(2026, 9, 14, tzinfo=UTC))
    assert [d.day for d in days] == [0, 5, 14, 19]
    day0 = days[0]
    assert day0.batch is not None
    assert "abc123" in day0.batch["meta"]["description"]
    assert checksum(day0.batch) == day0.batch["meta"]["checksum"]
    sigs = [c.signature for c in day0.calls]
    assert sigs == [
        "queueWithdrawals((address[],uint256[],address)[])",
        "approve(address,uint256)",
        "requestWithdrawals(uint256[],address)",
    ]
    # deposits wait until the exits land (execution/timeline.py): no deposit on day 0 or day 5, the rETH deposit is
    # made on day 19 with the last Lido claim
    assert day0.manual == [] and "NOT in this batch" not in day0.batch["meta"]["description"]
    # day 5 is a Lido claim: manual, so no file, but listed
    assert days[1].batch is None and len(days[1].manual) == 1
    # day 14 completes the EigenLayer withdrawal (manual, named in the file) and requests the stETH it returns
    assert days[2].batch is not None and "NOT in this batch" in days[2].batch["meta"]["description"]
    # day 19: the claim and the rETH deposit, which needs the deposit pool's address from RocketStorage: both manual
    assert days[3].batch is None and ["Rocket Pool" in m.what for m in days[3].manual] == [False, True]
    listed = summary("abc123", days, ctx)
    assert sum(len(d["manual"]) for d in listed["days"]) == sum(len(d.manual) for d in days) > 0
    assert all(tx["to"].startswith("0x") and tx["value"] == "0" for tx in day0.batch["transactions"])


def test_every_contract_address_is_written_in_its_eip55_case() -> None:
    """A mistyped digit in an address constant changes its EIP-55 case: the constants must match it."""
    constants = {
        k: v for k, v in vars(calls).items() if isinstance(v, str) and v.startswith("0x") and len(v) == 42
    }
    assert len(constants) >= 13
    for name, value in constants.items():
        assert checksum_address(value) == value, name
    # EIP-55's own test vector
    assert (
        checksum_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
        == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    )


def test_the_other_routes_calldata() -> None:
    """Every route of the table not checked above, against encodings written out here word by word."""
    ctx = Context(
        SAFE,
        slippage=0.005,
        rates={"kelp-rseth": 1.25, "rocketpool-reth": 1.1},
        resolved={"rocketDepositPool": "0xDD3f50F8A6CafbE9b31a427582963f465E745AF8"},
    )
    [renzo] = encode_event("deposit", "eth", "renzo-ezeth", 3.0, ctx).calls
    assert (renzo.to, renzo.value, renzo.data) == (
        calls.RENZO_RESTAKE_MANAGER,
        3 * E18,
        "0x" + sel("depositETH()"),
    )
    [kelp] = encode_event("deposit", "eth", "kelp-rseth", 2.5, ctx).calls
    least = 2 * E18 * 995 // 1000  # 2.5 ETH at 1.25 ETH per rsETH, less 0.5 %
    assert kelp.to == calls.KELP_DEPOSIT_POOL and kelp.value == 25 * E18 // 10
    assert kelp.data == "0x" + sel("depositETH(uint256,string)") + word(least) + word(0x40) + word(0)
    deposit, approval, wrap = encode_event("deposit", "eth", "etherfi-weeth", 2.0, ctx).calls
    eeth = 2 * E18 - 1_000  # all of it but the 1,000 wei left for eETH share rounding (not the slippage)
    assert (deposit.to, deposit.value, deposit.data) == (
        calls.ETHERFI_LIQUIDITY_POOL,
        2 * E18,
        "0x" + sel("deposit()"),
    )
    assert (approval.to, approval.data) == (
        calls.EETH,
        "0x" + sel("approve(address,uint256)") + addr(calls.WEETH) + word(eeth),
    )
    assert (wrap.to, wrap.data) == (calls.WEETH, "0x" + sel("wrap(uint256)") + word(eeth))
    [burn] = encode_event("request", "rocketpool-reth", "eth", 2.2, ctx).calls
    assert (burn.to, burn.value, burn.data) == (calls.RETH, 0, "0x" + sel("burn(uint256)") + word(2 * E18))
    [pool] = encode_event("deposit", "eth", "rocketpool-reth", 4.0, ctx).calls
    assert (pool.to, pool.value, pool.data) == (
        ctx.resolved["rocketDepositPool"],
        4 * E18,
        "0x" + sel("deposit()"),
    )
    assert encode_event("claim", "rocketpool-reth", "eth", 2.2, ctx) == calls.Encoded()  # the burn paid out
    for source, dest in (("lido-steth", "eth"), ("eigenlayer-steth", "lido-steth")):
        claim = encode_event("claim", source, dest, 1.0, ctx)
        assert claim.calls == [] and "only once" in claim.manual[0].why
