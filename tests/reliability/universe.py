"""A config file for a large synthetic universe (`optimizer.synthetic`), for tests that need a long solve."""

from __future__ import annotations

import json
from pathlib import Path

from optimizer.synthetic import synthetic_universe


def synthetic_config(path: Path, n_venues: int, n_nodes: int, seed: int = 1) -> Path:
    """Write a daemon config: the synthetic universe, every yield from one static source, 10,000 idle ETH."""
    universe, yields = synthetic_universe(n_venues, n_nodes, seed)
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        "[portfolio]",
        "holdings_eth = { eth = 10000.0 }",
        "[database]",
        'url = "sqlite:///synthetic.sqlite"',
        "[rates]",  # the first cycle may enter any venue, so its solve is the large one the tests need
        "min_observations = 1",
        "[sources.assumptions]",
        'adapter = "static"',
    ]
    for venue, comps in yields.items():
        for comp, value in comps.items():
            lines += [
                f"[sources.assumptions.values.{q(venue + '.' + comp)}]",
                f"value = {value!r}",
                'note = "synthetic"',
            ]
    for n in universe.nodes:
        lines += [
            "[[risk_nodes]]",
            f"id = {q(n.id)}",
            f"p = {n.p!r}",
            f"lgd = {n.lgd!r}",
            f"parents = {q(list(n.parents))}",
        ]
        if n.cap is not None:
            lines.append(f"cap = {n.cap!r}")
    for v in universe.venues:
        lines += ["[[venues]]", f"id = {q(v.id)}", f"kind = {q(str(v.kind))}"]
        if v.parent is not None:
            lines.append(f"parent = {q(v.parent)}")
        lines += [
            f"risk_nodes = {q(list(v.risk_nodes))}",
            f"exit_days = {v.exit_days!r}",
            f"entry_cost = {v.entry_cost!r}",
            f"exit_cost = {v.exit_cost!r}",
            f"min_share = {v.min_share!r}",
            f"max_share = {v.max_share!r}",
        ]
        components = [
            f"{{ name = {q(c.name)}, haircut = {c.haircut!r}, "
            f'quotes = [{{ source = "assumptions", key = {q(v.id + "." + c.name)} }}] }}'
            for c in v.components
        ]
        lines.append(f"components = [{', '.join(components)}]")
    path.write_text("\n".join(lines) + "\n")
    return path
