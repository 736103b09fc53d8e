"""From sources to venue yields: collection with per-source isolation (`collect`), cross-checks (`crosscheck`),
decision estimates (`estimate`) and the per-source circuit breaker (`breaker`). Imports settings, adapters, core."""
