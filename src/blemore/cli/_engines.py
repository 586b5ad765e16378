"""The execution-engine options shared by ``blemore extract`` and ``blemore benchmark``.

``--engine local|ray``, ``--address``, ``--workers``, ``--gpus-per-worker``; see
:mod:`blemore.engines` for what each engine does with them.
"""
from __future__ import annotations

from typing import Callable

import click

from blemore.engines import ENGINES, Engine, create_engine


def engine_options(workers: bool = True) -> Callable:
    """Decorator adding the engine options (``workers=False``: the command has its own
    ``--workers``)."""
    opts = [
        click.option("--engine", "engine", type=click.Choice(ENGINES.names()), default=None,
                     help="Where the work runs: local (this machine; default) or ray (a Ray cluster, "
                          "pip install 'blemore[distributed]').")
        ,
        click.option("--address", default=None, metavar="auto|HOST:PORT",
                     help="--engine ray: the cluster to join (default: the one this process is connected to, "
                          "else a private local one).")
        ,
        click.option("--gpus-per-worker", "gpus_per_worker", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="--engine ray: GPUs each worker asks for (fractions share a GPU)."),
    ]
    if workers:
        opts.append(click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
                                 help="Workers: local processes or Ray workers (default: one per CPU; "
                                      "for benchmark without --engine, one by one in this process)."))

    def deco(fn: Callable) -> Callable:
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return deco


def check_engine_options(engine: str | None, address: str | None, gpus_per_worker: float) -> None:
    """Refuse Ray-only options without ``--engine ray`` (every problem at once)."""
    if engine == "ray":
        return
    bad = [flag for flag, v in (("--address", address), ("--gpus-per-worker", gpus_per_worker)) if v]
    if bad:
        raise click.UsageError(f"{' and '.join(bad)} only apply with --engine ray")


def open_engine(engine: str | None, address: str | None, workers: int | None,
                gpus_per_worker: float, cpus_per_worker: float = 1.0) -> Engine | None:
    """The engine for ``benchmark``: None (trainings one by one here, the default) unless
    ``--engine`` or ``--workers`` asks for one."""
    check_engine_options(engine, address, gpus_per_worker)
    if engine is None and workers is None:
        return None
    if engine == "ray":
        return create_engine("ray", workers=workers, address=address, gpus_per_worker=gpus_per_worker,
                             cpus_per_worker=cpus_per_worker)
    return create_engine(engine or "local", workers=workers)
