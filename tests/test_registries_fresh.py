"""Every registry loads its own built-ins: in a fresh interpreter, importing only the module
that defines a registry is enough to list and create every built-in entry (no registration by
import side effect elsewhere, e.g. ``import blemore.heads`` for ``late-learned``)."""
import json
import subprocess
import sys

import pytest

# (module to import, code run after importing only it, built-ins that must be listed)
CASES = {
    "extractors": (
        "blemore.extractors.base",
        "from blemore.extractors.base import create_extractor, extractor_names\n"
        "names = extractor_names()\n"
        "made = [create_extractor(n).name for n in names]\n",
        {"face-mesh", "face-expression", "egemaps", "hubert-large", "clip-vit-b32"},
    ),
    "heads": (
        "blemore.heads.base",
        "from blemore.heads.base import create_head, list_heads\n"
        "names = list_heads()\n"
        "made = [create_head(n).name for n in names]\n",
        {"linear", "mlp-256", "mlp-512", "mlp-reg", "structured", "flat36", "multitask"},
    ),
    "fusions": (
        "blemore.fusion",
        "from blemore.fusion import create_fusion, list_fusions\n"
        "names = list_fusions()\n"
        "made = [create_fusion(n).name for n in names]\n",
        {"early", "late", "late-learned", "gated", "xattn"},
    ),
    "transforms": (
        "blemore.features",
        "from blemore.features import TransformChain, create_transform, list_transforms\n"
        "names = list_transforms()\n"
        "made = [create_transform(n).name for n in names]\n"
        "TransformChain([{'name': 'actor-norm'}, {'name': 'standardize'}])\n",
        {"standardize", "actor-norm"},
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_fresh_interpreter_creates_every_builtin(kind):
    module, code, expected = CASES[kind]
    script = (
        "import json, sys\n"
        f"import {module}\n"
        f"{code}"
        "others = sorted(m for m in sys.modules if m.startswith('blemore.') and m.count('.') >= 1)\n"
        "print(json.dumps({'names': names, 'made': made, 'modules': others}))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert expected <= set(out["names"]), (kind, out["names"])
    assert out["made"] == out["names"]  # every listed entry could be created, under its own name
    if kind == "transforms":  # per-actor normalisation does not need the heads package
        assert "blemore.heads" not in out["modules"], out["modules"]


def test_unknown_names_list_what_exists():
    from blemore.errors import BlemoreError
    from blemore.extractors import create_extractor
    from blemore.features import FeatureError, create_transform
    from blemore.fusion import FusionError, create_fusion
    from blemore.heads import HeadError, create_head

    for fn, err, must in ((create_extractor, KeyError, "face-mesh"), (create_head, HeadError, "mlp-512"),
                          (create_fusion, FusionError, "late-learned"), (create_transform, FeatureError, "actor-norm")):
        with pytest.raises(err) as e:
            fn("no-such-thing")
        assert isinstance(e.value, BlemoreError)
        assert "no-such-thing" in str(e.value) and must in str(e.value)


def test_every_registering_module_is_a_listed_builtin():
    """A module that registers a built-in with a ``@register_*`` decorator must be listed in its
    registry's ``BUILTIN_*`` tuple, or its names would exist only after something imports it."""
    import ast
    from pathlib import Path

    from blemore.extractors.base import BUILTIN_EXTRACTORS
    from blemore.features import BUILTIN_TRANSFORMS
    from blemore.fusion import BUILTIN_FUSIONS
    from blemore.heads.base import BUILTIN_HEADS

    listed = {"register_extractor": BUILTIN_EXTRACTORS, "register_head": BUILTIN_HEADS,
              "register_fusion": BUILTIN_FUSIONS, "register_transform": BUILTIN_TRANSFORMS}
    src = Path(__file__).resolve().parents[1] / "src"
    missing = []
    for path in sorted((src / "blemore").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for d in node.decorator_list:
                f = d.func if isinstance(d, ast.Call) else d
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                if name in listed and module not in listed[name]:
                    missing.append(f"{module}.{node.name} ({name})")
    assert not missing, f"add these modules to their registry's BUILTIN_* tuple: {missing}"
