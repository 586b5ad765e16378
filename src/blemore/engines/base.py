"""The one interface every execution engine implements.

Extraction (:mod:`blemore.extract`), the experiment runner (:mod:`blemore.experiment`) and the
ablation grid (:mod:`blemore.ablation`) hand their units of work (a clip, a training, a
configuration) to an :class:`Engine`; the engine decides where they run. A new engine is one
module that registers a subclass in :data:`ENGINES`; no runner changes.

Contract of :meth:`Engine.map`::

    for out in engine.map(fn, items, shared=data, setup=load, in_flight=8, retries=1):
        out.index, out.item, out.value, out.error

- ``fn(state, item)`` runs once per item, where ``state = setup(shared)`` when ``setup`` is
  given (computed once per worker process and kept: models load once per worker) and
  ``state = shared`` otherwise. ``shared`` is shipped once per worker / node (Ray: one
  ``ray.put``), never once per item.
- Outcomes come back in completion order, one per item, never fewer: ``value`` is what ``fn``
  returned, or ``error`` a one-line message when ``fn`` raised or its worker died. An item whose
  worker died is retried up to ``retries`` times on a fresh worker before it is reported.
- ``items`` is consumed lazily with at most ``in_flight`` items submitted and unfinished
  (back-pressure: memory stays flat on long lists).
- ``fn``, ``setup`` and ``shared`` must be picklable (module-level functions) unless the engine
  runs inline (:attr:`Engine.inline`).

Engines are context managers; :meth:`Engine.close` stops whatever the engine started (and
nothing it merely connected to).
"""
from __future__ import annotations

import abc
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator

from blemore.errors import BlemoreError
from blemore.registry import Registry

__all__ = ["Engine", "EngineError", "Outcome", "ENGINES", "create_engine", "list_engines", "WORKER_DIED"]

#: Start of the error message of an item whose worker process died (after the retries).
WORKER_DIED = "the worker process died while running this item"


class EngineError(BlemoreError, RuntimeError):
    """An engine that cannot run here (missing package, unreachable cluster, bad settings)."""


ENGINES: Registry = Registry("engine", builtins=("blemore.engines.local", "blemore.engines.ray"), error=EngineError)


@dataclass
class Outcome:
    """The result of one item: ``value`` or ``error`` (a message), never both."""

    index: int
    item: Any
    value: Any = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


class Engine(abc.ABC):
    """Runs ``fn(state, item)`` over items somewhere (see the module docstring).

    ``workers``: how many items run at once (default: the engine's choice, e.g. every core).
    ``cpus_per_worker`` / ``gpus_per_worker``: what each worker asks of the scheduler (engines
    without a scheduler ignore them). ``address``: the cluster to join (engines with one).
    """

    name: ClassVar[str] = "?"

    def __init__(self, workers: int | None = None, *, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, address: str | None = None):
        problems = []
        if workers is not None and int(workers) < 1:
            problems.append(f"workers must be at least 1 (got {workers})")
        if cpus_per_worker is not None and float(cpus_per_worker) < 0:
            problems.append(f"cpus_per_worker must be >= 0 (got {cpus_per_worker})")
        if gpus_per_worker is not None and float(gpus_per_worker) < 0:
            problems.append(f"gpus_per_worker must be >= 0 (got {gpus_per_worker})")
        if problems:
            raise EngineError(f"engine {self.name!r}: " + "; ".join(problems))
        self.workers = None if workers is None else int(workers)
        self.cpus_per_worker = float(cpus_per_worker if cpus_per_worker is not None else 1.0)
        self.gpus_per_worker = float(gpus_per_worker or 0.0)
        self.address = address

    @property
    def inline(self) -> bool:
        """True when items run one after another in this process (no pickling, no workers)."""
        return False

    @abc.abstractmethod
    def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any], *, shared: Any = None,
            setup: Callable[[Any], Any] | None = None, in_flight: int | None = None,
            retries: int = 1) -> Iterator[Outcome]:
        """Run ``fn(state, item)`` for every item; yield one :class:`Outcome` per item."""

    def describe(self) -> dict:
        """What ran where (for reports)."""
        return {"engine": self.name, "workers": self.workers, "cpus_per_worker": self.cpus_per_worker,
                "gpus_per_worker": self.gpus_per_worker, "address": self.address}

    def close(self) -> None:  # noqa: B027 - engines that start nothing have nothing to stop
        """Stop what this engine started."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_engine(name: str | Engine | None = "local", **options: Any) -> Engine:
    """An engine by registered name (``local``, ``ray``), with ``workers``, ``address``,
    ``cpus_per_worker``, ``gpus_per_worker``; an :class:`Engine` instance is returned as is."""
    if isinstance(name, Engine):
        return name
    return ENGINES.create(name or "local", **options)


def list_engines() -> list[str]:
    return ENGINES.names()


class WorkQueue:
    """What an engine submits next: items put back for a retry first (oldest first), then the
    items in order. :meth:`take` gives ``(index, item, attempts so far)`` or ``None`` when both
    are empty; :meth:`retry` puts an item back with its attempts."""

    def __init__(self, items: Iterable[Any]):
        self._source = enumerate(items)
        self._redo: deque[tuple[int, Any, int]] = deque()
        self._exhausted = False

    @property
    def retry_pending(self) -> bool:
        return bool(self._redo)

    def retry(self, index: int, item: Any, attempts: int) -> None:
        self._redo.append((index, item, attempts))

    def take(self) -> tuple[int, Any, int] | None:
        if self._redo:
            return self._redo.popleft()
        if self._exhausted:
            return None
        nxt = next(self._source, None)
        if nxt is None:
            self._exhausted = True
            return None
        return nxt[0], nxt[1], 0


def error_line(err: BaseException) -> str:
    """``Class: message`` on one line (the form failures are recorded in)."""
    msg = " ".join(str(err).split())
    return f"{err.__class__.__name__}: {msg}" if msg else err.__class__.__name__
