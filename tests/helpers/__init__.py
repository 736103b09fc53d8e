"""What the tests and the benchmarks share, none of it a test (issue 19): benchmarks import from here, never from a
test module.

- `demo`: the demo config copied into a folder (`copy_demo`), `free_port`, the console script (`AGGREGATOR`),
  `clean_env`, a daemon subprocess (`start_daemon`)
- `daemon`: `read_until` (a daemon's JSON log up to an event, under a deadline) and `Daemon` (every line kept,
  waitable by event; memory and descriptors from /proc) for the load and soak benchmarks
- `cli`: `run`, the console script as a real subprocess
- `settings`: `demo_settings`, the demo config with sections overridden by value instead of text edits
- `fixture_server`, `hostile_server`: real HTTP servers on 127.0.0.1 (recorded payloads; misbehaving sources)
- `cases` (re-exported from `tests/adapters/cases.py`, issue 20's), `faults`: the recorded source payloads and
  scripted faults of the adapter, flapping and soak runs
- `hostile`: the hostile-source matrix's settings (still defined in `tests/adapters/test_hostile.py`, owned by the
  sources work of issue 20; re-exported here so `benchmarks/hostile.py` does not import a test module)
"""
