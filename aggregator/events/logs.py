"""Logging configured once: JSON lines when the stream is not a terminal, readable console output when it is.

Every line goes through structlog, whoever wrote it. Our events (`structlog.get_logger`) and the records of the
standard `logging` module (APScheduler, uvicorn, asyncio, alembic, httpx, `warnings`) share one handler whose
`ProcessorFormatter` renders both the same way: in JSON mode each line is one strict JSON object (no NaN or
Infinity: non-finite numbers are written as null) with `event`, `level`, `logger` and `timestamp`; a traceback is
never printed as raw lines but carried in the `exception` field of one line. Uncaught exceptions, in the main
thread (`sys.excepthook`), other threads (`threading.excepthook`) or an event loop (asyncio's handler logs
through `logging`, and `asyncio_exception_handler` is there for loops we own), are logged that way too.

Floods are throttled: a line from another library, or an uncaught exception, that repeats (same logger, level and
message, numbers ignored) more than `THROTTLE_LIMIT` times within `THROTTLE_WINDOW_SECONDS` is suppressed after
one `log_throttled` line, and the next line let through for it carries `suppressed` (how many were dropped).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TextIO

import structlog

from aggregator.core import strictjson

THROTTLE_LIMIT = 10
THROTTLE_WINDOW_SECONDS = 60.0
THROTTLE_KEYS = 1000  # distinct messages remembered; the oldest are forgotten past that
# Libraries that narrate at INFO (every HTTP request, every job run, every migration step): warnings and up only,
# unless the level is debug.
QUIET_LIBRARIES = ("apscheduler", "uvicorn", "httpx", "httpcore", "alembic", "asyncio", "multipart", "hpack")
THROTTLED_EVENTS = frozenset({"uncaught_exception", "thread_exception", "asyncio_exception"})


def configure_logging(
    level: str = "info", fmt: Literal["auto", "json", "console"] = "auto", stream: TextIO | None = None
) -> None:
    """Route every log event to `stream` (stdout by default), one JSON object per line unless on a terminal."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    threshold = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=strictjson.dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    # JSON: the traceback becomes the `exception` string field; the console renderer prints it readably itself.
    exceptions: list[structlog.types.Processor] = [structlog.processors.format_exc_info] if use_json else []
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            *exceptions,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,  # a reload may configure again (`[logging]` level): no stale loggers
    )
    handler = _ThrottlingHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                _throttle_fields,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ThrottlingHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING) if threshold > logging.DEBUG else 0)
    logging.captureWarnings(True)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


_log = structlog.get_logger("aggregator.uncaught")


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """An exception nothing caught in the main thread: one log line, the traceback in its `exception` field."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _log.critical("uncaught_exception", error=f"{exc_type.__name__}: {exc}", exc_info=(exc_type, exc, tb))


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """An exception that ended a thread: one log line naming the thread."""
    if args.exc_type is SystemExit:
        return
    _log.error(
        "thread_exception",
        thread=args.thread.name if args.thread else None,
        error=f"{args.exc_type.__name__}: {args.exc_value}",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value is not None else None,
    )


def asyncio_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """For `loop.set_exception_handler`: what asyncio could not deliver anywhere, as one log line."""
    exc = context.get("exception")
    _log.error(
        "asyncio_exception",
        message=context.get("message"),
        error=f"{type(exc).__name__}: {exc}" if exc else None,
        exc_info=(type(exc), exc, exc.__traceback__) if isinstance(exc, BaseException) else None,
    )


@dataclass
class _Seen:
    start: float
    count: int = 0
    suppressed: int = 0


_DIGITS = re.compile(r"0x[0-9a-fA-F]+|\d+")


class _ThrottlingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that suppresses floods of one message (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._seen: dict[tuple[str, int, str], _Seen] = {}
        self._throttle_lock = threading.Lock()

    @staticmethod
    def _key(record: logging.LogRecord) -> tuple[str, int, str] | None:
        if isinstance(record.msg, dict):  # one of our events: only uncaught exceptions are throttled
            event = str(record.msg.get("event"))
            return (record.name, record.levelno, event) if event in THROTTLED_EVENTS else None
        first = str(record.msg).split("\n", 1)[0][:120]
        return record.name, record.levelno, _DIGITS.sub("#", first)

    def emit(self, record: logging.LogRecord) -> None:
        key = self._key(record)
        if key is not None:
            now = time.monotonic()
            with self._throttle_lock:
                seen = self._seen.get(key)
                if seen is None or now - seen.start >= THROTTLE_WINDOW_SECONDS:
                    if seen is not None and seen.suppressed:
                        record.log_suppressed = seen.suppressed
                    self._seen.pop(key, None)
                    self._seen[key] = _Seen(start=now, count=1)
                    while len(self._seen) > THROTTLE_KEYS:
                        del self._seen[next(iter(self._seen))]
                elif seen.count < THROTTLE_LIMIT:
                    seen.count += 1
                else:
                    seen.suppressed += 1
                    if seen.suppressed > 1:
                        return
                    record = _throttle_notice(key)
        super().emit(record)


def _throttle_notice(key: tuple[str, int, str]) -> logging.LogRecord:
    notice = logging.LogRecord("aggregator.logs", logging.WARNING, __file__, 0, "log_throttled", (), None)
    notice.log_throttled = {
        "of_logger": key[0],
        "of_level": logging.getLevelName(key[1]).lower(),
        "message": key[2],
        "limit": THROTTLE_LIMIT,
        "window_seconds": THROTTLE_WINDOW_SECONDS,
    }
    return notice


def _throttle_fields(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        event_dict.update(getattr(record, "log_throttled", {}))
        if suppressed := getattr(record, "log_suppressed", 0):
            event_dict["suppressed"] = suppressed
    return event_dict
