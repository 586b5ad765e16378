"""Dependencies run one way (DESIGN.md): every module of ``src/blemore`` belongs to a stage, and
no module imports from a higher stage, at module level or inside a function.

The stages, lowest first (a module may import its own stage and any lower one)::

    base        errors, registry, _io, _toml, weights, validate, engines (and ``blemore.__version__``)
    labels      labels
    media       media (decoding; dataset lists its media extensions)
    dataset     dataset, corpora (clip tables from folders and metadata)
    store       store (feature folders)
    extraction  extractors, extract
    synth       synth (generated media and feature corpora)
    features    pooling, features, normalise (transforms), adapt
    fusion      fusion, late_fusion, fusion_gated, fusion_xattn
    scoring     predictions (codes -> names -> entries -> tables), metrics, submission
    decode      decode, decoders, thresholds
    heads       heads (protocol, registry, models, training loop)
    config      config
    outputs     report, bundle, results, zeroshot, hub (what a run or a model gives)
    runner      experiment
    over        ablation, demo, view, model, ensemble (built over the runner and the outputs; ``model`` is
                the notebook API behind ``blemore.load_model``)
    cli         cli (thin commands over all of the above)

A registry's built-in modules (``BUILTIN_* = ("blemore....", ...)``) count as imports of the
module that defines the registry: the registry imports them on its first lookup.

A function-level import of a blemore module is refused too, unless it is listed in
:data:`FUNCTION_LEVEL_EXCEPTIONS` with the reason: such imports usually hide a cycle (the
fix is to move the shared code down a stage). Heavy third-party imports (torch,
transformers, mediapipe, matplotlib...) inside functions are fine and not checked.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "blemore"

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("blemore", "blemore.errors", "blemore.registry", "blemore._io", "blemore._toml", "blemore.weights",
              "blemore.validate", "blemore.engines")),
    ("labels", ("blemore.labels",)),
    ("media", ("blemore.media",)),
    ("dataset", ("blemore.dataset", "blemore.corpora")),
    ("store", ("blemore.store",)),
    ("extraction", ("blemore.extractors", "blemore.extract")),
    ("synth", ("blemore.synth",)),
    ("features", ("blemore.pooling", "blemore.features", "blemore.normalise", "blemore.adapt")),
    ("fusion", ("blemore.fusion", "blemore.late_fusion", "blemore.fusion_gated", "blemore.fusion_xattn")),
    ("scoring", ("blemore.predictions", "blemore.metrics", "blemore.submission")),
    ("decode", ("blemore.decode", "blemore.decoders", "blemore.thresholds")),
    ("heads", ("blemore.heads",)),
    ("config", ("blemore.config",)),
    ("outputs", ("blemore.report", "blemore.bundle", "blemore.results", "blemore.zeroshot", "blemore.hub")),
    ("runner", ("blemore.experiment",)),
    ("over", ("blemore.ablation", "blemore.demo", "blemore.view", "blemore.model", "blemore.ensemble")),
    ("cli", ("blemore.cli",)),
]
"""Stage name and the modules (or packages: every module under them) that belong to it."""

FUNCTION_LEVEL_EXCEPTIONS: dict[tuple[str, str], str] = {
    # (importing module, imported module): reason
}
"""Documented function-level imports of blemore modules (none needed so far). The ``cli``
package and the root package are handled by :data:`LAZY_PACKAGES`."""

REGISTRY_PLUGINS_ABOVE: dict[tuple[str, str], str] = {
    # (registry module, built-in module of a higher stage): reason. None needed so far (the gated
    # fusion strategy lives in blemore.fusion_gated and asks the head to wrap itself).
}
"""Registry built-ins (``BUILTIN_*`` entries) that may name a module of a higher stage: a plugin
that needs higher-stage code, listed by the registry so that its name works everywhere."""

LAZY_PACKAGES: dict[str, str] = {
    "blemore.cli": "commands import what they run when they run, so `blemore --help` and every "
                   "command start without loading torch-adjacent modules they do not use",
}
"""Packages whose function-level imports are exempt from the no-function-level-import rule
(the stage direction still applies to them)."""

ROOT_FACADE = "blemore"
"""The root package: a lazy facade over the public API (``blemore.load_model`` ...). Its own
imports are not direction-checked (it sits above everything); importing it (for
``__version__``) is allowed from anywhere (stage ``base``)."""


@dataclass(frozen=True)
class Edge:
    module: str
    imported: str
    line: int
    function_level: bool
    builtin: bool = False  # a registry's BUILTIN_* entry


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> int:
    """Index of the stage of ``module`` (longest matching prefix wins)."""
    best, best_len = None, -1
    for i, (_, members) in enumerate(STAGES):
        for m in members:
            prefix_ok = m != ROOT_FACADE and module.startswith(m + ".")  # the root owns only itself
            if (module == m or prefix_ok) and len(m) > best_len:
                best, best_len = i, len(m)
    if best is None:
        raise KeyError(module)
    return best


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: set[str]) -> str:
    """The blemore module ``name`` refers to (``blemore.media`` for ``from blemore import media``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def imports_of(source: str, module: str, is_package: bool, modules: set[str]) -> list[Edge]:
    """Every import of a blemore module in ``source``; ``function_level`` when inside a function.
    Imports under ``if TYPE_CHECKING:`` are skipped (they never run)."""
    tree = ast.parse(source)
    edges: list[Edge] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_stmt(sub, in_function)
                continue
            visit_stmt(child, in_function)

    def visit_stmt(child: ast.AST, in_function: bool) -> None:
        fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        targets: list[str] = []
        if isinstance(child, ast.Import):
            targets = [a.name for a in child.names]
        elif isinstance(child, ast.ImportFrom):
            base = _resolve(module, is_package, child)
            targets = [f"{base}.{a.name}" if a.name != "*" else base for a in child.names]
        for t in targets:
            if t == "blemore" or t.startswith("blemore."):
                edges.append(Edge(module, _known(t, modules) or t, child.lineno, in_function))
        visit(child, fn)

    visit(tree, False)
    # a registry's built-in modules (``BUILTIN_* = ("blemore.x", ...)``) are imports too: the
    # registry imports them on first lookup
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id.startswith("BUILTIN_") and isinstance(node.value, ast.Tuple):
            for elt in node.value.elts:
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str) and elt.value.startswith("blemore."):
                    edges.append(Edge(module, _known(elt.value, modules) or elt.value, elt.lineno, False, True))
    return edges


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def all_modules() -> dict[str, tuple[Path, bool]]:
    return {module_name(p): (p, p.name == "__init__.py") for p in sorted(PACKAGE.rglob("*.py"))}


def violations(edges: list[Edge]) -> list[str]:
    """Upward imports and undocumented function-level imports, one line each."""
    out = []
    for e in edges:
        if e.module == e.imported:
            continue
        if e.module != ROOT_FACADE and e.imported != ROOT_FACADE:
            try:
                lo, hi = stage_of(e.module), stage_of(e.imported)
            except KeyError:  # reported by test_every_module_has_a_stage
                continue
            if hi > lo and not (e.builtin and (e.module, e.imported) in REGISTRY_PLUGINS_ABOVE):
                out.append(f"{e.module}:{e.line} imports {e.imported}: stage {STAGES[lo][0]!r} may not import "
                           f"from the higher stage {STAGES[hi][0]!r} (move the shared code down a stage)")
        if e.function_level and e.module != ROOT_FACADE:
            if any(e.module == p or e.module.startswith(p + ".") for p in LAZY_PACKAGES):
                continue
            if (e.module, e.imported) in FUNCTION_LEVEL_EXCEPTIONS:
                continue
            out.append(f"{e.module}:{e.line} imports {e.imported} inside a function: import it at module level "
                       "(if a cycle prevents that, move the shared code down a stage), or document why in "
                       "tests/test_architecture.py FUNCTION_LEVEL_EXCEPTIONS")
    return list(dict.fromkeys(out))  # one line per import statement


def collect_edges() -> list[Edge]:
    mods = all_modules()
    names = set(mods)
    edges: list[Edge] = []
    for name, (path, is_pkg) in mods.items():
        edges += imports_of(path.read_text(encoding="utf-8"), name, is_pkg, names)
    return edges


# ----------------------------------------------------------------------------- the checks
def test_every_module_has_a_stage():
    missing = []
    for name in all_modules():
        try:
            stage_of(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"add these modules to STAGES in tests/test_architecture.py (and DESIGN.md): {missing}"


def test_imports_run_one_way():
    bad = violations(collect_edges())
    assert not bad, "\n".join(bad)


def test_documented_exceptions_are_still_needed():
    edges = {(e.module, e.imported) for e in collect_edges() if e.function_level}
    stale = [k for k in FUNCTION_LEVEL_EXCEPTIONS if k not in edges]
    assert not stale, f"these documented exceptions no longer exist, remove them: {stale}"


# ----------------------------------------------------------------------------- self-tests
MODS = {"blemore", "blemore.labels", "blemore.heads", "blemore.heads.base", "blemore.decode",
        "blemore.experiment", "blemore.cli", "blemore.cli.models", "blemore.media"}


def _check(source: str, module: str, is_package: bool = False) -> list[str]:
    return violations(imports_of(source, module, is_package, MODS))


def test_self_test_upward_imports_fail():
    # module level, absolute and relative, and inside a function
    assert _check("from blemore.experiment import run_experiment\n", "blemore.labels")
    assert _check("from . import experiment\n", "blemore.labels")
    assert _check("import blemore.heads.base\n", "blemore.decode")
    assert _check("def f():\n    from blemore.heads.base import Head\n", "blemore.decode")
    msg = _check("from blemore.experiment import Experiment\n", "blemore.heads.base")[0]
    assert "blemore.heads.base:1 imports blemore.experiment" in msg and "'heads'" in msg and "'runner'" in msg


def test_self_test_downward_and_lazy_cases():
    assert _check("from blemore.labels import EMOTIONS\nfrom blemore import __version__\n", "blemore.decode") == []
    assert _check("from blemore import media\n", "blemore.decode") == []  # resolves to blemore.media
    # a function-level import of a lower stage is still refused (it would hide nothing but is noise)
    assert _check("def f():\n    from blemore.labels import EMOTIONS\n", "blemore.decode")
    # ... except in a lazy package, where only the direction is checked
    assert _check("def f():\n    from blemore.experiment import run_experiment\n", "blemore.cli.models") == []
    assert _check("from blemore.cli import models\n", "blemore.experiment")  # upward into the cli
    # TYPE_CHECKING imports never run
    assert _check("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from blemore.experiment import X\n",
                  "blemore.labels") == []
    # third-party imports inside functions are fine
    assert _check("def f():\n    import torch\n", "blemore.heads.base") == []


def test_self_test_registry_builtins_are_imports():
    src = 'BUILTIN_FUSIONS: tuple[str, ...] = ("blemore.decode", "blemore.heads.base")\n'
    bad = _check(src, "blemore.decode")
    assert len(bad) == 1 and "imports blemore.heads.base" in bad[0]


def test_self_test_stage_table():
    assert STAGES[stage_of("blemore.heads.mlp")][0] == "heads"
    assert STAGES[stage_of("blemore.extractors.hf_audio")][0] == "extraction"
    assert stage_of("blemore.decoders") < stage_of("blemore.heads.base") < stage_of("blemore.experiment")
    with pytest.raises(KeyError):
        stage_of("blemore_other.x")
    with pytest.raises(KeyError):  # a new module must be placed in the table, not inherit the root's stage
        stage_of("blemore.brand_new")
