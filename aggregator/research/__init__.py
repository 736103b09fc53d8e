"""Research: the backtest (later sweeps). Replays history through the optimizer; imported only by interfaces."""
