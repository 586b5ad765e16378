"""The Ray engine: the same work on a Ray cluster (a laptop, a multi-GPU workstation, KubeRay
or ``ray up``). Needs the optional extra: ``pip install 'blemore[distributed]'``.

Connection: ``address=None`` joins the cluster this process is already connected to or, if
none, starts a private local one (``ray.init``; stopped by :meth:`RayEngine.close`);
``address="auto"`` / ``"HOST:PORT"`` / ``"ray://HOST:10001"`` joins an existing cluster (left
running). The dashboard is never started and usage statistics are off
(``RAY_USAGE_STATS_ENABLED=0``) unless the environment says otherwise.

Network: a local Ray binds to the machine's own interface address, not only to loopback. On a
machine where only loopback may carry traffic (this project's development and CI machines), run
it inside a private network namespace: ``unshare -n sh -c 'ip link set lo up && blemore ...'``
(as root); Ray then finds no route and uses 127.0.0.1. The project's Ray tests
(``tests/ray_checks.py``) and ``benchmarks/bench_ray.py`` do exactly that themselves.

:meth:`RayEngine.map` (contract: :mod:`blemore.engines.base`):

- with ``setup`` (extraction: models load once per worker): ``workers`` stateful actors, each
  asking for ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs and running
  ``setup(shared)`` once. An actor that dies is replaced by a fresh one (its ``setup`` runs
  again); the items it held are retried (``retries`` times, one at a time on an idle actor so a clip
  that kills its worker every time cannot take others with it), then reported with
  :data:`~blemore.engines.base.WORKER_DIED`.
- without ``setup`` (trainings, ablation configurations): one Ray task per item with the
  requested CPUs / GPUs; Ray's scheduler places them.
- ``shared`` is ``ray.put`` once (one copy per node in the object store, numpy arrays read
  zero-copy), never shipped per item; ``fn`` is put once too.
- at most ``in_flight`` items (default ``2 * workers``) are submitted and unfinished
  (``ray.wait`` with a bounded timeout), so a long clip list streams with flat memory.

Workers need ``blemore`` (same version) importable; they need no file system shared with the
driver as long as ``fn`` gets what it reads through ``shared`` / the items (extraction ships
media bytes, see :mod:`blemore.extract`).
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable, Iterator

from blemore.engines.base import ENGINES, WORKER_DIED, Engine, EngineError, Outcome, WorkQueue, error_line

__all__ = ["RayEngine", "import_ray", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'blemore[distributed]'"
_WAIT_S = 1.0  # every ray.wait is bounded (Ctrl-C stays responsive)


def import_ray():
    """The ``ray`` module, or an :class:`EngineError` naming the install command."""
    try:
        import ray
    except ImportError as err:
        raise EngineError(f"the ray engine needs the Ray package, which is not installed here ({err}); "
                          f"install it with: {INSTALL_HINT}") from None
    return ray


class _Worker:
    """The actor body: ``setup`` once, then ``fn(state, item)`` per call."""

    def __init__(self, setup: Callable | None, shared: Any):
        self.state = setup(shared) if setup is not None else shared

    def call(self, fn: Callable, item: Any) -> Any:
        return fn(self.state, item)

    def pid(self) -> int:
        return os.getpid()


def _task(fn: Callable, shared: Any, item: Any) -> Any:
    return fn(shared, item)


@ENGINES.register("ray")
class RayEngine(Engine):
    """Ray tasks / actors on a local or remote Ray cluster."""

    def __init__(self, workers: int | None = None, *, address: str | None = None, **options: Any):
        super().__init__(workers, address=address, **options)
        ray = import_ray()
        self._ray = ray
        self._owned = False
        self.actor_pids: list[int] = []  # pids of the current map's actors (tests kill one)
        self.actor_load: list[int] = []  # calls outstanding per actor of the current map
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=True, logging_level="WARNING")
            except Exception as err:
                where = address or "a new local cluster"
                raise EngineError(f"cannot start or join Ray at {where!r}: {error_line(err)}") from None
            self._owned = address is None
        elif address not in (None, "auto"):
            current = ray.get_runtime_context().gcs_address
            if current != address and not str(address).endswith(current):
                raise EngineError(f"this process is already connected to Ray at {current}, not {address!r}")

    # -- sizing -----------------------------------------------------------------------
    def _n_workers(self) -> int:
        if self.workers:
            return self.workers
        res = self._ray.cluster_resources()
        if self.gpus_per_worker > 0:
            return max(1, int(res.get("GPU", 0) // self.gpus_per_worker))
        return max(1, int(res.get("CPU", 1) // max(self.cpus_per_worker, 1e-9)))

    def _opts(self) -> dict:
        return {"num_cpus": self.cpus_per_worker, "num_gpus": self.gpus_per_worker}

    def describe(self) -> dict:
        d = super().describe()
        d["cluster"] = {k: v for k, v in self._ray.cluster_resources().items() if k in ("CPU", "GPU")}
        return d

    # -- map --------------------------------------------------------------------------
    def map(self, fn, items: Iterable[Any], *, shared=None, setup=None, in_flight=None,
            retries: int = 1) -> Iterator[Outcome]:
        ray = self._ray
        n = self._n_workers()
        in_flight = max(1, int(in_flight or 2 * n))
        shared_ref = ray.put(shared)
        fn_ref = ray.put(fn)
        if setup is not None:
            yield from self._actors(fn_ref, setup, shared_ref, items, n, in_flight, retries)
        else:
            yield from self._tasks(fn_ref, shared_ref, items, in_flight, retries)

    def _classify(self, ref) -> tuple[Any, str | None, bool]:
        """(value, error, worker_died) of a finished ref."""
        ray = self._ray
        exc = ray.exceptions
        died = tuple(c for c in (getattr(exc, "RayActorError", None), getattr(exc, "ActorDiedError", None),
                                 getattr(exc, "ActorUnavailableError", None), getattr(exc, "WorkerCrashedError", None),
                                 getattr(exc, "NodeDiedError", None), getattr(exc, "ObjectLostError", None))
                     if c is not None)
        try:
            return ray.get(ref, timeout=60), None, False
        except died:
            return None, None, True
        except exc.RayTaskError as err:  # fn raised: report its own exception
            cause = getattr(err, "cause", None)
            return None, error_line(cause) if isinstance(cause, BaseException) else error_line(err), False
        except Exception as err:
            return None, error_line(err), False

    def _tasks(self, fn_ref, shared_ref, items, in_flight: int, retries: int) -> Iterator[Outcome]:
        ray = self._ray
        remote = ray.remote(_task).options(max_retries=0, **self._opts())
        queue = WorkQueue(items)
        inflight: dict = {}
        while True:
            while len(inflight) < in_flight:
                nxt = queue.take()
                if nxt is None:
                    break
                i, item, att = nxt
                inflight[remote.remote(fn_ref, shared_ref, item)] = (i, item, att + 1)
            if not inflight:
                return
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=_WAIT_S)
            for ref in done:
                i, item, att = inflight.pop(ref)
                value, err, died = self._classify(ref)
                if died and att <= retries:
                    queue.retry(i, item, att)
                elif died:
                    yield Outcome(i, item, error=f"{WORKER_DIED} ({att} attempt(s))", attempts=att)
                else:
                    yield Outcome(i, item, value, err, attempts=att)

    def _actors(self, fn_ref, setup, shared_ref, items, n: int, in_flight: int, retries: int) -> Iterator[Outcome]:
        ray = self._ray
        cls = ray.remote(_Worker).options(max_restarts=0, max_task_retries=0, **self._opts())
        actors = [cls.remote(setup, shared_ref) for _ in range(n)]
        generation = [0] * n  # bumped when a dead actor is replaced
        try:
            self.actor_pids = ray.get([a.pid.remote() for a in actors], timeout=600)
        except Exception as err:
            for a in actors:
                ray.kill(a)
            raise EngineError(f"could not start {n} Ray worker(s) with {self._opts()} each: {error_line(err)}") from None
        per_actor = max(1, math.ceil(in_flight / n))
        load = self.actor_load = [0] * n  # calls outstanding per actor
        alone = [False] * n  # an actor running a retry takes nothing else
        queue = WorkQueue(items)
        inflight: dict = {}
        pid_refs: dict = {}  # pid of a replacement actor, for actor_pids
        try:
            while True:
                ready = ray.wait(list(pid_refs), num_returns=len(pid_refs), timeout=0)[0] if pid_refs else []
                for ref in ready:
                    a = pid_refs.pop(ref)
                    try:
                        self.actor_pids[a] = ray.get(ref, timeout=10)
                    except Exception:
                        pass
                while True:
                    if queue.retry_pending:
                        idle = [a for a in range(n) if load[a] == 0]
                        if not idle:
                            break
                        a = idle[0]
                        alone[a] = True
                    else:
                        free = [a for a in range(n) if not alone[a] and load[a] < per_actor]
                        if not free or len(inflight) >= in_flight:
                            break
                        a = min(free, key=lambda k: load[k])
                    nxt = queue.take()
                    if nxt is None:
                        break
                    i, item, att = nxt
                    load[a] += 1
                    inflight[actors[a].call.remote(fn_ref, item)] = (i, item, att + 1, a, generation[a])
                if not inflight:
                    return
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=_WAIT_S)
                for ref in done:
                    i, item, att, a, gen = inflight.pop(ref)
                    load[a] -= 1
                    if load[a] == 0:
                        alone[a] = False
                    value, err, died = self._classify(ref)
                    if died and gen == generation[a]:  # a fresh actor in its place (calls queue until it is up)
                        try:
                            ray.kill(actors[a], no_restart=True)
                        except Exception:  # pragma: no cover - already gone
                            pass
                        actors[a] = cls.remote(setup, shared_ref)
                        generation[a] += 1
                        pid_refs[actors[a].pid.remote()] = a
                    if died and att <= retries:
                        queue.retry(i, item, att)
                    elif died:
                        yield Outcome(i, item, error=f"{WORKER_DIED} (crash or out of memory; {att} attempt(s))",
                                      attempts=att)
                    else:
                        yield Outcome(i, item, value, err, attempts=att)
        finally:
            for a in actors:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # pragma: no cover - already gone
                    pass
            self.actor_pids, self.actor_load = [], []

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False
