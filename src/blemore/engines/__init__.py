"""Execution engines: where the units of work of extraction, experiments and ablations run.

``local`` (this process or a process pool on this machine) and ``ray`` (a Ray cluster; the
optional extra ``blemore[distributed]``) implement one interface,
:class:`~blemore.engines.base.Engine`; they are looked up by name in
:data:`~blemore.engines.base.ENGINES` (:func:`create_engine`).
"""
from blemore.engines.base import (
    ENGINES,
    WORKER_DIED,
    Engine,
    EngineError,
    Outcome,
    create_engine,
    list_engines,
)

__all__ = ["ENGINES", "WORKER_DIED", "Engine", "EngineError", "Outcome", "create_engine", "list_engines"]
