"""Where the cells run: this process one by one, local worker processes (the default), or a Dask cluster.

Each engine yields a `CellResult` as soon as its cell finishes (in finishing order, not grid order). A cell that
raises comes back as a result with its error; a worker that dies (killed, out of memory) fails the cells it held
and, on Dask, the scheduler moves the rest to the other workers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog

from aggregator.core.errors import ConfigError
from aggregator.research.sweep.cell import CellResult, CellTask, failed, run_cell

if TYPE_CHECKING:
    from distributed import Client

log = structlog.get_logger(__name__)

CellFn = Callable[[CellTask], CellResult]
CONNECT_TIMEOUT_SECONDS = 20.0


def _single_threaded() -> None:
    """Worker start-up: one BLAS/OpenMP thread per process (the processes are the parallelism)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


@dataclass(frozen=True)
class Serial:
    """Every cell in this process, one after the other (the reference the others are checked against)."""

    fn: CellFn = run_cell

    @property
    def label(self) -> str:
        return "this process"

    def run(self, tasks: Sequence[CellTask]) -> Iterator[CellResult]:
        for task in tasks:
            yield self.fn(replace(task, quiet_logs=False))


@dataclass(frozen=True)
class Local:
    """`workers` processes on this machine (spawned: nothing of this process's threads or solver state is
    inherited); each keeps its compiled models for all the cells it runs."""

    workers: int
    fn: CellFn = run_cell

    @property
    def label(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"

    def run(self, tasks: Sequence[CellTask]) -> Iterator[CellResult]:
        if not tasks:
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)), mp_context=ctx, initializer=_single_threaded
        ) as pool:
            pending: dict[Future[CellResult], CellTask] = {pool.submit(self.fn, t): t for t in tasks}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = pending.pop(fut)
                        yield _outcome(fut, task)
            finally:
                for fut in pending:  # the caller stopped early (Ctrl-C): drop what has not started
                    fut.cancel()


def _outcome(fut: Future[CellResult], task: CellTask) -> CellResult:
    exc = fut.exception()
    if exc is None:
        return fut.result()
    return failed(task.cell, f"{type(exc).__name__}: {exc} (the worker process failed)")


@dataclass(frozen=True)
class Dask:
    """A Dask distributed cluster: a scheduler address (tcp://host:8786) or a connected `distributed.Client`.
    Workers need this package (the same version) and the config's history files at the same paths; run them with
    `--nthreads 1` (a worker's cells run one at a time anyway: cvxpy is not thread-safe)."""

    cluster: str | Client
    fn: CellFn = run_cell

    @property
    def label(self) -> str:
        address = (
            self.cluster if isinstance(self.cluster, str) else self.cluster.scheduler_info().get("address")
        )
        return f"Dask cluster {address}"

    def run(self, tasks: Sequence[CellTask]) -> Iterator[CellResult]:
        from distributed import Client, as_completed  # noqa: PLC0415 (only a --cluster sweep loads Dask)

        if isinstance(self.cluster, str):
            try:
                client = Client(self.cluster, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(
                    f"--cluster {self.cluster}: no Dask scheduler answered within {CONNECT_TIMEOUT_SECONDS:g} s "
                    f"({type(exc).__name__}: {exc}); start one with `dask scheduler` (docs/scaling.md) or leave "
                    "--cluster out to run on local worker processes"
                ) from exc
            own = True
        else:
            client, own = self.cluster, False
        try:
            yield from self._stream(client, as_completed, tasks)
        finally:
            if own:
                client.close()

    def _stream(self, client: Client, as_completed: Any, tasks: Sequence[CellTask]) -> Iterator[CellResult]:
        futures = {}
        for t in tasks:
            fut = client.submit(self.fn, t, pure=False, key=f"sweep-cell-{t.cell.id}-{os.urandom(4).hex()}")
            futures[fut.key] = (fut, t)
        try:
            for fut in as_completed([f for f, _ in futures.values()], loop=client.loop):
                task = futures.pop(fut.key)[1]
                if fut.status == "finished":
                    yield fut.result()
                else:
                    exc = fut.exception()
                    yield failed(task.cell, f"{type(exc).__name__}: {exc} (on the Dask cluster)")
                fut.release()
        finally:
            for fut, _ in futures.values():  # stopped early: cancel what has not run
                fut.cancel()


Engine = Serial | Local | Dask


def describe(engine: Engine) -> str:
    return engine.label
