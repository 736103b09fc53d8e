"""`aggregator sources check`: a live smoke test of the configured sources, for people with internet.

Each configured source is fetched once, concurrently, for the keys the venues ask of it, with its own settings
(timeouts, retries, URL fallbacks, deadline). For every source it reports the status, the time it took, each value
(shown in percent) and the URL that answered, or why it failed or which quote was rejected (`aggregator.rates.validate`:
not finite, outside min_yield..max_yield, stale; a field missing from the answer).

A source is *required* when it is the only quote of some venue component: without it that venue is held. The
command exits 0 when every required quote is usable and 4 otherwise (the other failures are reported, not fatal).
The tests run it against a local server serving the recorded bodies; nothing in the test suite reaches the internet.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapters import REGISTRY, Quote, SourceError
from adapters.endpoints import rejected_reasons
from aggregator.rates.collect import validate
from aggregator.settings import Settings

EXIT_OK = 0
EXIT_REQUIRED_FAILED = 4


@dataclass
class KeyResult:
    key: str
    value: float | None = None  # fraction per year
    url: str = ""
    rejected: str = ""  # why the quote cannot be used
    required: bool = False  # the only quote of some component


@dataclass
class SourceResult:
    name: str
    adapter: str
    seconds: float = 0.0
    error: str = ""
    keys: list[KeyResult] = field(default_factory=list)

    @property
    def required(self) -> bool:
        return any(k.required for k in self.keys)

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        bad = [k for k in self.keys if k.value is None or k.rejected]
        return "ok" if not bad else ("rejected" if len(bad) == len(self.keys) else "partial")

    def required_failures(self) -> list[str]:
        if self.error:
            return [f"{self.name}.{k.key}" for k in self.keys if k.required]
        return [f"{self.name}.{k.key}" for k in self.keys if k.required and (k.value is None or k.rejected)]


def wanted_keys(settings: Settings) -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    """Keys asked of each source, and the (source, key) pairs that are the only quote of a component."""
    wanted: dict[str, set[str]] = defaultdict(set)
    sole: set[tuple[str, str]] = set()
    for venue in settings.venues:
        for comp in venue.components:
            for ref in comp.quotes:
                wanted[ref.source].add(ref.key)
            if len({ref.source for ref in comp.quotes}) == 1:
                sole.update((ref.source, ref.key) for ref in comp.quotes)
    return wanted, sole


async def check(
    settings: Settings, client: httpx.AsyncClient, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[SourceResult]:
    """Fetch every configured source once (the keys the venues ask of it), concurrently."""
    wanted, sole = wanted_keys(settings)

    async def one(name: str) -> SourceResult:
        src = settings.sources[name]
        keys = sorted(wanted.get(name, ()))
        out = SourceResult(name, src.adapter, keys=[KeyResult(k, required=(name, k) in sole) for k in keys])
        if not keys:
            out.error = "no venue quotes this source: nothing asked"
            return out
        start = time.perf_counter()
        try:
            quotes: list[Quote] = await REGISTRY[src.adapter].fetch(client, name, src, keys, now)
        except SourceError as exc:
            out.error = exc.reason
            return out
        except Exception as exc:  # an adapter bug is this source's failure, as in a rates cycle
            out.error = f"adapter failed on this answer: {type(exc).__name__}: {exc}"
            return out
        finally:
            out.seconds = time.perf_counter() - start
        by_key = {q.key: q for q in quotes}
        reasons = rejected_reasons(quotes)
        checked_at = now()
        for k in out.keys:
            q = by_key.get(k.key)
            if q is None:
                k.rejected = reasons.get(k.key, "not in the source's answer")
                continue
            k.value, k.url = q.value, q.url
            k.rejected = validate(q, settings, checked_at) or ""
        return out

    return list(await asyncio.gather(*(one(n) for n in sorted(settings.sources))))


def run(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> list[SourceResult]:
    async def go() -> list[SourceResult]:
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            return await check(settings, client)

    return asyncio.run(go())


def exit_code(results: list[SourceResult]) -> int:
    return EXIT_REQUIRED_FAILED if any(r.required_failures() for r in results) else EXIT_OK


def report(results: list[SourceResult]) -> dict[str, object]:
    return {
        "sources": [
            {
                "source": r.name,
                "adapter": r.adapter,
                "status": r.status,
                "required": r.required,
                "seconds": round(r.seconds, 3),
                "error": r.error or None,
                "quotes": [
                    {
                        "key": k.key,
                        "value": k.value,
                        "url": k.url or None,
                        "rejected": k.rejected or None,
                        "required": k.required,
                    }
                    for k in r.keys
                ],
            }
            for r in results
        ],
        "required_failed": [f for r in results for f in r.required_failures()],
    }


def render(console: Console, results: list[SourceResult]) -> None:
    table = Table(title="Sources, fetched once (values in percent per year)")
    for col in ("source", "status", "required", "seconds", "key", "value", "URL that answered / why not"):
        table.add_column(col, justify="right" if col in ("seconds", "value") else "left")
    for r in results:
        colour = {"ok": "green", "partial": "yellow"}.get(r.status, "red")
        first = True
        for k in r.keys or [KeyResult("")]:
            detail = escape(r.error or (k.url + (f"  (rejected: {k.rejected})" if k.rejected else "")))
            table.add_row(
                r.name if first else "",
                f"[{colour}]{r.status}[/]" if first else "",
                ("yes" if r.required else "no") if first else "",
                f"{r.seconds:.2f}" if first else "",
                k.key + (" *" if k.required else ""),
                "" if k.value is None else f"{k.value * 100:.4g} %",
                detail if (first or not r.error) else "",
            )
            first = False
    console.print(table)
    failed = [f for r in results for f in r.required_failures()]
    if failed:
        console.print(
            f"[red]required quotes unusable[/] (* = the only quote of a component): {', '.join(failed)}"
        )
    else:
        console.print("every required quote (* = the only quote of a component) is usable")
