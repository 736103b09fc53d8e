"""`aggregator backtest`: replay a history of yields through the same optimizer the daemon runs, next to the simple
strategies operators use today, and report how each did.

history (series → daily known values) → book (the simulated portfolio) ← strategies (targets from what was known
the day before) → replay (the daily loop) → report (table, PNGs, HTML, JSON).
"""
