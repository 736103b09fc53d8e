"""The HTTP API: the FastAPI app (`app`), the write guard and exposure check (`guard`), connection limits
(`connections`). Import the submodule you need: this package imports nothing, so `guard` loads without FastAPI."""
