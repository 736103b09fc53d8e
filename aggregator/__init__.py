"""The service, one package per layer (a layer imports only the layers below it; `.importlinter` enforces it):

interfaces   CLI, HTTP API, daemon, render           (the edges: what people and processes talk to)
research     the backtest                              (replays history through the optimizer)
service      one rebalance cycle                       (rates -> optimizer -> store)
events | store | coordination                          (logs, metrics, webhooks | SQLite store | leases)
rates        collection, cross-check, estimates, breaker
settings     loading and the schema of config/*.toml
core         clock, the one exception tree, strict JSON

Beside the service, not inside it: `adapters/` (sources), `optimizer/` (the convex model), `execution/`
(plan -> transactions). They may import `aggregator.core` and nothing else of the service.
"""
