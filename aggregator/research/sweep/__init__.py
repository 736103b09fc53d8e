"""`aggregator sweep`: the backtest over a grid of settings, on local worker processes or a Dask cluster.

grid (the file: axes and values → cells) → cell (one backtest in a worker, its model compiled once per worker)
→ engines (this process, local processes, Dask: results as they finish) → output (the table, each cell's summary,
the frontier plots). docs/scaling.md, "Parameter sweeps".
"""
