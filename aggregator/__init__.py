"""The service: settings, rates, the rebalance cycle, CLI, daemon."""
