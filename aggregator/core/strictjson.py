"""Strict JSON for everything the service writes for machines (`--json` output, the JSON log): RFC 8259 has no
NaN or Infinity, so a non-finite float is written as `null`, and `json.dumps(..., allow_nan=False)` makes sure
nothing else slips through."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, +/-Infinity) inside dicts, lists and tuples replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that never writes NaN or Infinity: non-finite floats become null."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
