"""Cross-checking the valid quotes of each venue component, with memory across cycles.

- Several sources: the component's yield is the median of their independent observations (`aggregator.rates.lineage`:
  quotes deriving from the same origin count once); a spread between observations beyond
  `disagreement_tolerance` is flagged.
- A jump: a source whose value moved more than `jump_threshold` from its last accepted value is quarantined
  unless another source agrees with the new level (within the tolerance) or the same source still shows that level
  at least `confirm_after_minutes` later (a re-fetch of the same cached number a minute later confirms nothing).
  A source with no accepted value yet (a new process, a new source) is compared with the component's last yield
  (seeded from the store), so a one-source component jumps into quarantine too, after a restart or from the CLI.
  A component whose every quote is quarantined has no yield this cycle: its venue is held.
- Plausibility (`plausible_range`): before any of this, a quote outside its component's bounds is rejected; the
  defaults depend on what the component is (an LST's staking yield is 0.5–15 %/yr), a component can set its own.
- Change since the last cycle is kept per component (seeded from the store), for `rates`.
- What decisions see is not this cycle's median alone but a robust estimate over a window (`aggregator.rates.estimate`,
  `[rates]` `estimator`, `window_days`, `min_observations`).

`RateMemory` is what a service keeps between cycles.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime

from adapters import Quote
from aggregator.rates.lineage import Observation, lineage, observations
from aggregator.settings.rates import Bounds, CrossCheckSettings

Component = tuple[str, str]  # (venue, component)
STAKING_KINDS = frozenset({"liquid_staking", "liquid_restaking"})


def plausible_range(
    settings: CrossCheckSettings, venue_kind: str, component: str, own: Bounds | None
) -> tuple[Bounds, str]:
    """The bounds a component's quotes must fall in, and where they come from (for the rejection reason)."""
    if own is not None:
        return own, "the component's own plausible"
    if venue_kind in STAKING_KINDS and component == "base":
        return settings.plausible_staking, f"[rates] plausible_staking ({venue_kind} base)"
    return settings.plausible_other, "[rates] plausible_other"


@dataclass
class RateMemory:
    # (venue, component, source) -> last accepted value; and a quarantined value with when it was first seen
    accepted: dict[tuple[str, str, str], float] = field(default_factory=dict)
    pending: dict[tuple[str, str, str], tuple[float, datetime]] = field(
        default_factory=dict
    )  # value, first seen
    previous: dict[Component, float] = field(default_factory=dict)  # last cycle's component yield


@dataclass(frozen=True)
class Checked:
    """A component's verdict this cycle."""

    value: float | None
    used: tuple[Quote, ...]
    quarantined: tuple[tuple[Quote, float], ...]  # (quote, last accepted value of its source)
    spread: float | None  # max − min of the used quotes when several
    change: float | None  # value − last cycle's value
    observations: tuple[Observation, ...] = ()  # the independent observations the value rests on


def check_component(
    component: Component, quotes: list[Quote], memory: RateMemory, settings: CrossCheckSettings, now: datetime
) -> Checked:
    """Apply the jump quarantine and take the median; updates `memory`."""
    venue, comp = component
    used: list[Quote] = []
    held: list[tuple[Quote, float]] = []
    for q in quotes:
        key = (venue, comp, q.source)
        last = memory.accepted.get(key, memory.previous.get(component))
        jumped = last is not None and abs(q.value - last) > settings.jump_threshold
        if jumped:
            others = [o for o in quotes if o.source != q.source and lineage(o) != lineage(q)]
            agreed = any(abs(o.value - q.value) <= settings.disagreement_tolerance for o in others)
            pending = memory.pending.get(key)
            repeated = (
                pending is not None
                and abs(q.value - pending[0]) <= settings.jump_threshold
                and (now - pending[1]).total_seconds() >= settings.confirm_after_minutes * 60
            )
            if not (agreed or repeated):
                if pending is None or abs(q.value - pending[0]) > settings.jump_threshold:
                    memory.pending[key] = (q.value, now)
                assert last is not None
                held.append((q, last))
                continue
        memory.accepted[key] = q.value
        memory.pending.pop(key, None)
        used.append(q)
    if not used:
        return Checked(None, (), tuple(held), None, None)
    seen = observations(used)  # quotes of one origin are one observation (aggregator.rates.lineage)
    values = [o.value for o in seen]
    value = statistics.median(values)
    before = memory.previous.get(component)
    memory.previous[component] = value
    return Checked(
        value=value,
        used=tuple(used),
        quarantined=tuple(held),
        spread=max(values) - min(values) if len(values) > 1 else None,
        change=None if before is None else value - before,
        observations=tuple(seen),
    )
