"""The bottom floor: the clock, the one exception tree, strict JSON. Imports nothing of this project."""
