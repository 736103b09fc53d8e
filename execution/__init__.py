"""Execution: turning an optimizer plan into the transactions that carry it out (issue #16).

A pure package beside `optimizer/`: plan in, transactions out, no I/O. It imports neither `aggregator` (beyond
`aggregator.core`) nor `adapters`; the service calls it, never the other way round.
"""
