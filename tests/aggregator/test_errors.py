"""The one exception tree: the class hierarchy is the tree its module docstring draws, source errors included."""

from __future__ import annotations

import re

import adapters.errors
from aggregator.core import errors


def drawn_tree() -> dict[str, str]:
    """Each class named in the docstring's tree, mapped to the class it is drawn under."""
    assert errors.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^([│├└─ ]*)([A-Z]\w*Error)\b", line)
        if not match:
            continue
        depth = len(match.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match.group(2)] = stack[-1][1]
        stack.append((depth, match.group(2)))
    return parents


def test_the_class_tree_is_the_drawn_tree() -> None:
    drawn = drawn_tree()
    actual = {
        name: cls.__mro__[1].__name__
        for name, cls in vars(errors).items()
        if isinstance(cls, type)
        and issubclass(cls, errors.AggregatorError)
        and cls is not errors.AggregatorError
    }
    assert drawn == actual
    assert drawn["SourceError"] == "AggregatorError"


def test_adapters_raise_the_same_classes() -> None:
    assert adapters.errors.SourceError is errors.SourceError
    assert issubclass(adapters.errors.TemporarySourceError, errors.AggregatorError)
    assert issubclass(adapters.errors.SourceDataError, errors.AggregatorError)
