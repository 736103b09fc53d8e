"""What the service tells the world: structured logs (`logs`), Prometheus metrics (`metrics`), webhooks
(`notify`). Imports rates, settings, core; never the service or the interfaces."""
