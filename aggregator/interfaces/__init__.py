"""The edges: the CLI (`cli`, lazy imports), the HTTP API (`api`), the daemon and the text rendering. The only
layer that may import every other; nothing imports it."""
