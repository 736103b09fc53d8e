"""Priors from the scorecard into the config: `[risk] scorecard = "risk/scorecard.toml"` makes every risk node's
`p` and `lgd` come out of the scorecard (typed values are refused, so there is one place to look)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aggregator.core.errors import ConfigError
from aggregator.risk.scorecard import Prior, derive, load_scorecard


class RiskSettings(BaseModel):
    """`[risk]`: where the priors come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scorecard: Path | None = Field(
        default=None,
        description="the risk scorecard TOML (relative to the config file); every risk node's p and lgd come from it",
    )


def apply_scorecard(raw: dict[str, Any], base: Path, env_path: str | None = None) -> dict[str, Prior] | None:
    """Resolve `risk.scorecard` against `base` (or take `env_path`, the environment's override, relative to the
    working directory), derive the priors and write them into `raw["risk_nodes"]`.

    ConfigError when a risk node has no score or override, types its own p or lgd, or the scorecard scores a
    node the config does not have. Returns the priors (None without a scorecard)."""
    risk = raw.get("risk")
    if env_path:
        path = Path(env_path).resolve()
    elif isinstance(risk, dict) and isinstance(risk.get("scorecard"), str):
        path = Path(risk["scorecard"])
        path = path if path.is_absolute() else (base / path).resolve()
    else:
        return None
    if isinstance(risk, dict):
        risk["scorecard"] = str(path)
    priors = derive(load_scorecard(path))
    nodes = [n for n in raw.get("risk_nodes") or [] if isinstance(n, dict)]
    ids = [str(n.get("id")) for n in nodes]
    for node in nodes:
        node_id = str(node.get("id"))
        typed = [k for k in ("p", "lgd") if k in node]
        if typed:
            raise ConfigError(
                f"risk_nodes[{node_id}].{typed[0]} is typed in the config, but risk.scorecard ({path}) derives "
                f"it; remove {' and '.join(typed)} here, or set nodes.{node_id}.override in the scorecard with a "
                "reason"
            )
        prior = priors.get(node_id)
        if prior is None:
            raise ConfigError(
                f"risk_nodes[{node_id}] has no score or override in the risk scorecard {path}: add [nodes.{node_id}] "
                f"with its attributes and sources, or [nodes.{node_id}.override] with p, lgd and a reason"
            )
        node["p"], node["lgd"] = prior.p, prior.lgd
    stray = sorted(set(priors) - set(ids))
    if stray:
        raise ConfigError(
            f"{path}: nodes {stray} are not risk nodes of the config; valid: {sorted(ids)} (remove them or add "
            "[[risk_nodes]] for them)"
        )
    return priors
