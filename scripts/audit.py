"""`make audit`: check the locked dependencies for known vulnerabilities with pip-audit.

pip-audit asks a vulnerability database on the network (by default PyPI's JSON API, which carries the OSV
advisories). Where it cannot be reached (no network, a proxy, an outage), the audit cannot say anything, so this
prints one line, `audit skipped: <why>`, and exits 0 rather than failing the build or pretending to have passed.
Where it can, pip-audit runs on each lock file given (`--disable-pip`: the locks are pinned and hashed, nothing
is installed, `--strict`: a package it could not look up fails the audit) and its exit code is this script's:
non-zero when a locked version has a known vulnerability or could not be checked.

Usage: python scripts/audit.py LOCK [LOCK...]   (AUDIT_PROBE_URL overrides the reachability probe)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

# What pip-audit's default service ("pypi") reads for each locked package: PyPI's JSON for that exact version,
# whose `vulnerabilities` list carries the advisories. A proxy that serves PyPI's simple index but not this is as
# good as no network for the audit.
PROBE_URL = "https://pypi.org/pypi/{name}/{version}/json"
PROBE_TIMEOUT_SECONDS = 10.0
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)


def unreachable(url: str) -> str | None:
    """Why the vulnerability data at `url` cannot be read, or None when it can."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read(20_000_000))
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"{url} is unreachable ({reason})"
    if not isinstance(body, dict) or "vulnerabilities" not in body:
        return f"{url} answered without a `vulnerabilities` list"
    return None


def main(locks: list[str]) -> int:
    if not locks:
        print("usage: audit.py LOCK [LOCK...]", file=sys.stderr)
        return 2
    if importlib.util.find_spec("pip_audit") is None:
        print("audit skipped: pip-audit is not installed (it comes with the dev lock: make .venv/.installed)")
        return 0
    first = PIN.search(Path(locks[0]).read_text())
    if first is None:
        print(f"{locks[0]}: no pinned requirement (name==version) found", file=sys.stderr)
        return 2
    why = unreachable(os.environ.get("AUDIT_PROBE_URL", PROBE_URL.format(name=first[1], version=first[2])))
    if why is not None:
        print(f"audit skipped: the vulnerability database cannot be reached: {why}")
        return 0
    worst = 0
    for lock in locks:
        print(f"audit: {lock}", flush=True)
        done = subprocess.run(
            # --strict: a dependency that could not be audited fails the audit instead of passing silently
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--strict",
                "--disable-pip",
                "--progress-spinner",
                "off",
                "-r",
                lock,
            ],
            check=False,
        )
        worst = max(worst, done.returncode)
    print("audit: no known vulnerabilities" if worst == 0 else "audit FAILED (see above)")
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
