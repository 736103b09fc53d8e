"""A model cache whose compiled problems follow a change of priors: a universe that differs from a cached one only
in its nodes' p and lgd re-uses that compiled problem (`AllocationModel.retarget`) instead of building a new one.

For `aggregator rebalance --sensitivity`, which re-solves one plan with each prior halved and doubled: every variant
is a warm re-solve. The daemon keeps `ModelCache` (one universe, one compiled model per shape); here one compiled model
per shape serves every set of priors, the last one loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from optimizer.inputs import Universe
from optimizer.optimize import ModelCache
from optimizer.problem import AllocationModel, ModelShape


def skeleton(universe: Universe) -> str:
    """The universe without its priors: what a compiled model's structure depends on, as a digest."""
    bare = universe.model_copy(
        update={"nodes": tuple(n.model_copy(update={"p": 0.0, "lgd": 0.0}) for n in universe.nodes)}
    )
    return hashlib.sha256(bare.model_dump_json().encode()).hexdigest()


@dataclass
class RetargetingCache(ModelCache):
    """`ModelCache` keyed by the universe's skeleton: new priors retarget the cached model (no compile)."""

    by_skeleton: dict[tuple[str, ModelShape], AllocationModel] = field(default_factory=dict)
    built: int = 0  # models compiled
    retargeted: int = 0  # prior changes taken warm

    def get(self, universe: Universe, shape: ModelShape) -> AllocationModel:
        key = (skeleton(universe), shape)
        model = self.by_skeleton.get(key)
        if model is not None and model.universe == universe:
            return model
        if model is not None and model.retarget(universe):
            self.retargeted += 1
            return model
        model = AllocationModel(universe, shape)
        self.built += 1
        self.by_skeleton[key] = model
        return model


__all__ = ["RetargetingCache", "skeleton"]
