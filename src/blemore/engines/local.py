"""The local engine: this process (``workers=1``) or a pool of spawned processes on this machine.

- ``workers=1`` runs every item inline, in order, in this process (``setup`` runs once here).
- ``workers=N>1`` starts ``N`` processes (``spawn``: no state inherited from the parent), each
  running ``setup(shared)`` once in its initializer; ``shared`` is pickled once per process.
  At most ``in_flight`` items (default ``2 * N``) are submitted and unfinished.
- A process that dies (a crash in native code, out of memory) breaks the whole pool: the items
  that were in flight get a fresh pool and are retried up to ``retries`` times, then reported
  with :data:`~blemore.engines.base.WORKER_DIED`. Retries run one at a time, so the item that
  kills its worker every time ends up reported and the ones that merely shared the pool with
  it are redone.
- Results come back from the processes serialised with ``cloudpickle`` (by value, so trained
  heads whose torch networks are classes made inside ``build_module`` travel like any other
  object; plain ``pickle`` refuses such local classes).
"""
from __future__ import annotations

import os
import pickle
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

import cloudpickle

from blemore.engines.base import ENGINES, WORKER_DIED, Engine, Outcome, WorkQueue, error_line

__all__ = ["LocalEngine"]

_STATE: dict[str, Any] = {}


def _init(setup: Callable | None, shared: Any) -> None:
    _STATE["state"] = setup(shared) if setup is not None else shared


def _call(fn: Callable, item: Any) -> bytes:
    return cloudpickle.dumps(fn(_STATE["state"], item))


@ENGINES.register("local")
class LocalEngine(Engine):
    """This machine: inline for one worker, a spawned process pool for several."""

    def __init__(self, workers: int | None = None, **options: Any):
        super().__init__(workers, **options)
        self.n = self.workers or (os.cpu_count() or 1)

    @property
    def inline(self) -> bool:
        return self.n == 1

    def map(self, fn, items: Iterable[Any], *, shared=None, setup=None, in_flight=None,
            retries: int = 1) -> Iterator[Outcome]:
        if self.inline:
            yield from self._inline(fn, items, shared, setup)
        else:
            yield from self._pool(fn, items, shared, setup, in_flight or 2 * self.n, retries)

    def _inline(self, fn, items, shared, setup) -> Iterator[Outcome]:
        state = setup(shared) if setup is not None else shared
        for i, item in enumerate(items):
            try:
                yield Outcome(i, item, fn(state, item))
            except Exception as err:
                yield Outcome(i, item, error=error_line(err))

    def _pool(self, fn, items, shared, setup, in_flight: int, retries: int) -> Iterator[Outcome]:
        import multiprocessing as mp

        queue = WorkQueue(items)
        while True:
            pool = ProcessPoolExecutor(self.n, mp_context=mp.get_context("spawn"), initializer=_init,
                                       initargs=(setup, shared))
            inflight: dict[Future, tuple[int, Any, int]] = {}
            broken = False
            try:
                while True:
                    while len(inflight) < in_flight and not broken:
                        # a retry runs alone, so only the item that kills its worker is blamed
                        alone = queue.retry_pending
                        if alone and inflight:
                            break
                        nxt = queue.take()
                        if nxt is None:
                            break
                        i, item, att = nxt
                        inflight[pool.submit(_call, fn, item)] = (i, item, att + 1)
                        if alone:
                            break
                    if not inflight:
                        break
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i, item, att = inflight.pop(fut)
                        try:
                            yield Outcome(i, item, pickle.loads(fut.result()), attempts=att)
                        except BrokenProcessPool:
                            broken = True
                            if att <= retries:
                                queue.retry(i, item, att)
                            else:
                                yield Outcome(i, item, error=f"{WORKER_DIED} (crash or out of memory; "
                                                             f"{att} attempt(s))", attempts=att)
                        except Exception as err:
                            yield Outcome(i, item, error=error_line(err), attempts=att)
                    if broken and not inflight:
                        break
            finally:
                pool.shutdown(wait=not broken, cancel_futures=True)
            if not broken:
                return
