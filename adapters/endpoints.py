"""A source reached at an ordered list of URLs, read leniently and strictly.

- **Fallbacks.** Providers move their APIs (ether.fi's protocol detail moved from app.ether.fi to
  www.ether.fi/api/dapp; Rocket Pool serves rETH's APR at `/mainnet/reth/apr` and the older `/api/apr`). A source
  lists its URLs in order, today's first; they are tried in turn within the source's one `deadline_seconds`, each
  with its own retries. The first URL whose answer yields a value is used; the quote carries that URL, and an
  answer from a fallback is logged (`source_fallback_used`, with why the earlier URLs failed).
- **Lenient numbers.** A number may arrive as a JSON number or as a numeric string (`"2.17"`, `"0.0384"`): both
  are read; anything else (`"n/a"`, `true`, an object) is not a number.
- **Strict fields.** A wanted value that is missing, null or not a number is not guessed: that quote is rejected
  (`quote_rejected`) with a reason naming the field, and the source's other values still count. Only a body that
  is not JSON, or JSON of the wrong kind, fails the source.

`base_url` in a source's settings points every URL of the list at another host (a mirror, a proxy, the local
server of the tests), keeping each URL's path; `urls` replaces the list.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import structlog
from pydantic import Field, field_validator

from adapters.base import Quote, SourceSettings
from adapters.errors import SourceDataError, SourceError, TemporarySourceError
from adapters.http import request_json
from aggregator.core.clock import Clock

log = structlog.get_logger(__name__)

NUMERIC = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
MAX_URLS = 8
Path = tuple[str | int, ...]


class Quotes(list[Quote]):
    """An adapter's quotes plus the keys it could not quote from the answer, each with the reason (naming the
    field). A plain list to everyone else."""

    def __init__(self, quotes: Sequence[Quote] = (), rejected: Mapping[str, str] | None = None) -> None:
        super().__init__(quotes)
        self.rejected: dict[str, str] = dict(rejected or {})


def rejected_reasons(result: Sequence[Quote]) -> dict[str, str]:
    """Why keys are missing from an adapter's result, when it says (`Quotes`); empty otherwise."""
    return dict(getattr(result, "rejected", {}))


class EndpointSettings(SourceSettings):
    """Settings of a source reached at an ordered list of URLs."""

    urls: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URLS,
        description="the endpoint's full URLs, tried in order (default: the adapter's, today's first)",
    )
    base_url: str | None = Field(
        default=None,
        description="points every URL at this scheme://host[/prefix], keeping each URL's path (a mirror, a proxy)",
    )

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str] | None) -> list[str] | None:
        for url in urls or ():
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"each of urls must be an http(s) URL with a host, got {url!r}")
        return urls

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, base: str | None) -> str | None:
        if base is not None and (urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc):
            raise ValueError(f"base_url must be an http(s) URL with a host, got {base!r}")
        return base


def resolve_urls(settings: EndpointSettings, defaults: Sequence[str]) -> list[str]:
    """The URLs to try, in order: `urls` (or the adapter's defaults), moved to `base_url` when it is set."""
    urls = list(settings.urls or defaults)
    if settings.base_url is None:
        return urls
    base = settings.base_url.rstrip("/")
    out = []
    for url in urls:
        parts = urlsplit(url)
        out.append(f"{base}{parts.path}" + (f"?{parts.query}" if parts.query else ""))
    return out


def number(doc: Any, path: Path) -> float | str:
    """The number at `path` in `doc` (a JSON number or a numeric string), or why there is none, naming the field."""
    name = ".".join(str(p) for p in path) or "(the body)"
    node = doc
    for p in path:
        if isinstance(p, int):
            if not isinstance(node, list) or not -len(node) <= p < len(node):
                return f"field {name} is missing from the answer"
        elif not isinstance(node, dict) or p not in node:
            return f"field {name} is missing from the answer"
        node = node[p]
    if node is None:
        return f"field {name} is null"
    if isinstance(node, bool):
        return f"field {name} is {str(node).lower()}, not a number"
    if isinstance(node, int | float):
        return float(node)
    if isinstance(node, str) and len(node) <= 400 and NUMERIC.match(node):
        return float(node)
    shown = repr(node)[:60] if isinstance(node, str) else type(node).__name__
    return f"field {name} is not a number or a numeric string: {shown}"


@dataclass(frozen=True)
class Reading:
    """One value read from an answer, in the source's unit, with the time the source says it was observed."""

    value: float
    observed: datetime | None = None


Extract = Callable[[Any, Sequence[str]], dict[str, Reading | str]]
"""(parsed body, wanted keys) -> per key a Reading or the reason it cannot be quoted. Raises SourceDataError when
the body is of the wrong kind altogether."""


async def read_first(  # noqa: PLR0917 - the adapter contract's arguments, plus what to read
    client: httpx.AsyncClient,
    name: str,
    settings: SourceSettings,
    urls: Sequence[str],
    keys: Sequence[str],
    extract: Extract,
) -> tuple[dict[str, Reading | str], str]:
    """The readings from the first URL whose answer gives at least one value, and that URL.

    A URL that fails (after its retries), or answers a body with none of the wanted values, passes to the next,
    while the source's deadline lasts. When the last URL answered a body without values, its per-field reasons are
    returned (each quote is rejected, naming the field); when none answered, a SourceError naming every URL."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.deadline_seconds
    errors: list[tuple[str, SourceError]] = []
    last: tuple[dict[str, Reading | str], str] | None = None
    for i, url in enumerate(urls):
        if i and loop.time() >= deadline:
            break
        try:
            payload = await request_json(client, name, url, settings, deadline_at=deadline)
            got = extract(payload, keys)
        except SourceError as exc:
            errors.append((url, exc))
            continue
        if any(isinstance(r, Reading) for r in got.values()):
            log.debug("source_answered", source=name, url=url, fallback=bool(i))
            if i:
                log.warning(
                    "source_fallback_used",
                    source=name,
                    url=url,
                    failed=[f"{u}: {e.reason}" for u, e in errors] or None,
                    without_values=last[1] if last else None,
                )
            return got, url
        last = (got, url)
        reasons = "; ".join(sorted({r for r in got.values() if isinstance(r, str)}))
        errors.append((url, SourceDataError(name, f"no usable value: {reasons}")))
    if last is not None:
        return last
    if len(errors) == 1:
        raise errors[0][1]
    reason = "; ".join(f"[{i + 1}] {e.reason}" for i, (_, e) in enumerate(errors))
    if len(errors) < len(urls):
        reason += f" (the {settings.deadline_seconds:g}s deadline left no time for the other URLs)"
    temporary = all(isinstance(e, TemporarySourceError) for _, e in errors)
    cls = TemporarySourceError if temporary else SourceDataError
    raise cls(name, f"every URL failed: {reason}")


class Endpoint:
    """An adapter whose keys are fields of one JSON document, reached at an ordered list of URLs.

    Subclasses declare the default URLs (today's first), which field each key reads, the unit, and where the
    observation time is, if the source gives one."""

    settings_model: ClassVar[type[SourceSettings]]
    keys: ClassVar[frozenset[str] | None]
    urls: ClassVar[tuple[str, ...]]
    fields: ClassVar[dict[str, Path]]
    unit: ClassVar[float]
    label: ClassVar[str]
    origin: ClassVar[str]
    """What this source's numbers derive from (`aggregator.rates.lineage`): the provider's own API."""

    @classmethod
    def observed(cls, doc: Any) -> datetime | str | None:
        """The observation time the answer carries (None: it carries none; a str: why it is unusable)."""
        return None

    @classmethod
    def extract(cls, doc: Any, keys: Sequence[str]) -> dict[str, Reading | str]:
        if not isinstance(doc, dict):
            raise SourceDataError("", f"expected a JSON object, got {type(doc).__name__}")
        when = cls.observed(doc)
        out: dict[str, Reading | str] = {}
        for key in keys:
            value = number(doc, cls.fields[key])
            if isinstance(value, str):
                out[key] = value
            elif isinstance(when, str):
                out[key] = when
            else:
                out[key] = Reading(value, when)
        return out

    async def fetch(
        self,
        client: httpx.AsyncClient,
        name: str,
        settings: EndpointSettings,
        keys: Sequence[str],
        now: Clock,
    ) -> list[Quote]:
        wanted = [k for k in self.fields if k in keys]
        if not wanted:
            return []
        urls = resolve_urls(settings, self.urls)

        def extract(doc: Any, ks: Sequence[str]) -> dict[str, Reading | str]:
            try:
                return self.extract(doc, ks)
            except SourceDataError as exc:
                raise SourceDataError(name, exc.reason) from exc

        readings, url = await read_first(client, name, settings, urls, wanted, extract)
        fetched = now()
        unit = "%" if self.unit == 0.01 else "(fraction)"
        quotes = [
            Quote(
                source=name,
                key=k,
                value=r.value * self.unit,
                observed_at=r.observed or fetched,
                fetched_at=fetched,
                note=f"{self.label} {k} {r.value:g} {unit}",
                url=url,
                origin=self.origin,
            )
            for k, r in readings.items()
            if isinstance(r, Reading)
        ]
        return Quotes(quotes, {k: f"{r}: {url}" for k, r in readings.items() if isinstance(r, str)})
