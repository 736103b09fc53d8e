"""A real PostgreSQL server for the tests, started from Debian's binaries in a temporary data directory.

Why not pytest-postgresql: it runs `initdb` and `pg_ctl` as the current user, and CI runs as root, which `initdb`
refuses; here the server runs as the unprivileged `postgres` user (via `runuser`) when the tests run as root, and as
the current user otherwise. The server listens on 127.0.0.1 at a free port (its socket in its own directory), trusts
local connections, and is stopped with `pg_ctl stop -m immediate` when the session ends. Each test gets a fresh
database of its own (`PostgresServer.database`), so tests never see each other's rows.

Where the binaries are missing (no `postgresql` package) or the server cannot start, `PostgresServer.start` raises
`PostgresUnavailableError` with the reason, and the PostgreSQL variant of a test skips saying it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, text

from tests.helpers.demo import free_port

START_SECONDS = 60.0  # a loaded 2-core machine may take a while to start the server


class PostgresUnavailableError(RuntimeError):
    """The server cannot run here; the message says why (the PostgreSQL tests skip with it)."""


def _bindir() -> Path:
    """The newest Debian PostgreSQL bin directory (/usr/lib/postgresql/<major>/bin), or PATH's initdb."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        raise PostgresUnavailableError(
            "no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin or on PATH: install the Debian "
            "`postgresql` package (.ci/run does as root)"
        )
    return Path(initdb).resolve().parent


def _as_user() -> list[str]:
    """The prefix that runs a server command unprivileged: `runuser -u postgres --` as root, nothing otherwise."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailableError(
            "running as root and there is no `postgres` user to run the server as"
        ) from exc
    if shutil.which("runuser") is None:
        raise PostgresUnavailableError(
            "running as root and `runuser` is missing to run the server as `postgres`"
        )
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PostgresServer:
    """One running server; `url(db)` is a SQLAlchemy URL for the psycopg driver."""

    bindir: Path
    root: Path
    port: int
    prefix: list[str]
    _names: count[int] = field(default_factory=lambda: count(1))

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = _bindir()
        prefix = _as_user()
        root = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
        if prefix:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        data = root / "data"
        init = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            capture_output=True, text=True, check=False, timeout=START_SECONDS,
        )  # fmt: skip
        if init.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailableError(f"initdb failed: {init.stderr.strip()[-500:]}")
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
        start = subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options,
             "-w", "-t", str(int(START_SECONDS)), "start"],
            capture_output=True, text=True, check=False, timeout=START_SECONDS + 10,
        )  # fmt: skip
        server = cls(bindir, root, port, prefix)
        if start.returncode != 0:
            log = (
                (root / "server.log").read_text(errors="replace")[-500:]
                if (root / "server.log").exists()
                else ""
            )
            server.stop()
            raise PostgresUnavailableError(f"pg_ctl start failed: {start.stderr.strip()[-300:]} {log}")
        return server

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')  # a name made here, never from outside
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def count_rows(url: str, table: str) -> int:
    """Rows in `table` of the store at `url`, read through a fresh engine of its own (any dialect)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text(f"select count(*) from {table}")).scalar_one()
            )  # a table name of ours
    finally:
        engine.dispose()


@contextmanager
def engines_disposed() -> Iterator[None]:
    """Keep every SQLAlchemy engine connected inside the block alive, and dispose of them all at its end: the
    stores a test opens and drops would otherwise leave their pooled psycopg connections to the garbage collector,
    which closes them with a ResourceWarning (an error under this suite's filterwarnings)."""
    seen: dict[int, Engine] = {}

    def keep(conn: Connection) -> None:
        seen.setdefault(id(conn.engine), conn.engine)

    event.listen(Engine, "engine_connect", keep)
    try:
        yield
    finally:
        event.remove(Engine, "engine_connect", keep)
        for engine in seen.values():
            engine.dispose()
