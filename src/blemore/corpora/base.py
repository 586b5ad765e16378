"""What every corpus recipe shares: the recipe protocol, label mapping, folds, the result.

A **recipe** turns a corpus's own layout (folders and file names) into blemore metadata, the
way lhotse's recipes turn corpora into manifests. :meth:`Recipe.scan` lists the corpus's
media files as :class:`Found` records (clip id, path, actor, the corpus's own emotion
category, gender and intensity where the corpus says them); :func:`prepare` then

1. maps each category into BLEMORE's six codes: the recipe's defaults
   (:attr:`Recipe.categories`, ``None`` = outside the label space), overridden by a user map
   (``{"surprise": "fea", "calm": "neu", "contempt": "drop"}``) whose keys may be any synonym
   the recipe knows (:attr:`Recipe.synonyms`: ``angry`` / ``anger`` / ``ANG`` / ``W``...);
   clips whose category maps to nothing are dropped and counted per category; a category the
   recipe does not know is an error naming it and the files that carry it;
2. makes actor-disjoint folds (``k`` folds, or one per actor with ``folds="loso"``),
   balanced by gender when every actor's gender is known;
3. returns a :class:`CorpusResult`: the metadata table (:data:`METADATA_COLUMNS` first, then
   the recipe's own columns) and the counts, with :meth:`CorpusResult.summary` lines that
   say what was dropped, mapped and skipped.

The metadata is what :func:`blemore.dataset.load_metadata` reads: ``filename`` is the clip id
(not a BLEMORE id, which is fine because the label and actor columns are there), ``actor`` the
corpus's own actor id, ``corpus`` the recipe name (so actors of two corpora never merge).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError, format_problems
from blemore.labels import EMOTION_NAMES, EMOTIONS
from blemore.media import MEDIA_EXTENSIONS  # one list; its order is the preference when a clip has several
from blemore.registry import Registry
from blemore.dataset import leave_one_actor_out, make_folds
from blemore._io import atomic_write_bytes

__all__ = [
    "CorpusError", "Recipe", "Found", "CorpusResult", "RECIPES", "METADATA_COLUMNS",
    "prepare", "parse_map", "combine", "media_files", "match_files", "assign_folds",
]

METADATA_COLUMNS: tuple[str, ...] = (
    "filename", "actor", "gender", "emotion_1", "intensity", "corpus", "fold", "source_emotion", "path",
)
"""The columns every recipe writes, in order (recipe-specific columns follow)."""

DROP = "drop"
_BUILTIN_RECIPES = tuple(f"blemore.corpora.recipes.{m}" for m in
                         ("blemore", "ravdess", "crema_d", "mead", "emodb", "generic"))


class CorpusError(BlemoreError, ValueError):
    """A corpus folder, option or label map a recipe cannot use (the message lists every problem)."""

    def __init__(self, source: str, problems: Sequence[str] | str | None = None):
        if problems is None:  # one plain message (the registry's errors)
            self.source, self.problems = "", [source]
            super().__init__(source)
            return
        self.source = source
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(format_problems(source, self.problems, limit=30) if len(self.problems) > 1
                         else f"{source}: {self.problems[0] if self.problems else 'unusable'}")


RECIPES: Registry = Registry("corpus recipe", builtins=_BUILTIN_RECIPES, error=CorpusError)


@dataclass
class Found:
    """One media file a recipe recognised."""

    clip_id: str
    path: Path
    actor: str
    category: str  # the corpus's own emotion category (a key of Recipe.categories)
    gender: str | None = None  # "f" / "m"
    intensity: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Recipe:
    """One corpus. Subclasses set :attr:`name`, :attr:`categories`, :attr:`synonyms`,
    :attr:`naming` and implement :meth:`scan`."""

    name: ClassVar[str] = ""
    naming: ClassVar[str] = ""
    """The file naming the recipe reads, for messages and the README."""
    categories: ClassVar[Mapping[str, str | None]] = {}
    """The corpus's emotion categories -> BLEMORE code (``None``: outside the label space)."""
    synonyms: ClassVar[Mapping[str, str]] = {}
    """Other spellings (lower case) -> a category: codes in file names, English names..."""

    def scan(self, root: Path, **options: Any) -> tuple[list[Found], list[str]]:
        """``(recognised files, names of media files not named by the corpus's scheme)``."""
        raise NotImplementedError

    def build(self, root: Path, user_map: Mapping[str, str], folds: int | str, seed: int,
              **options: Any) -> CorpusResult | None:
        """A recipe whose corpus does not fit :meth:`scan` (e.g. BLEMORE's blends) makes its
        whole result here; the default (``None``) means: use :meth:`scan`."""
        return None

    def columns(self) -> tuple[str, ...]:
        """Recipe-specific metadata columns (keys of :attr:`Found.extra`), in order."""
        return ()

    # -- label mapping -----------------------------------------------------------------
    def category_of(self, key: str) -> str | None:
        """The category a name, code or synonym denotes (``None`` when unknown)."""
        k = key.strip()
        if k in self.categories:
            return k
        low = k.lower()
        for c in self.categories:
            if c.lower() == low:
                return c
        return self.synonyms.get(low)

    def map_key(self, key: str) -> str | None:
        """The category a user map key names (``None`` when unknown)."""
        return self.category_of(key)

    def code_of(self, value: str) -> str | None:
        """A map target: one of the six codes, ``drop``, an English emotion name, or a synonym
        of a category that maps into the label space (``None`` when none of these)."""
        v = value.strip().lower()
        if v in EMOTIONS or v == DROP:
            return v
        for code, name in EMOTION_NAMES.items():
            if v == name:
                return code
        c = self.category_of(v)
        return None if c is None else self.categories[c]


def parse_map(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["surprise=fea", "calm=neu"]`` (or a mapping) -> ``{"surprise": "fea", "calm": "neu"}``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in items.items()}
    out: dict[str, str] = {}
    bad = []
    for it in items:
        k, sep, v = str(it).partition("=")
        if not sep or not k.strip() or not v.strip():
            bad.append(f"{it!r} is not CATEGORY=CODE (e.g. surprise=fea, calm=neu, contempt=drop)")
        else:
            out[k.strip()] = v.strip()
    if bad:
        raise CorpusError("label map", bad)
    return out


def _resolve_map(recipe: Recipe, user_map: Mapping[str, str]) -> dict[str, str | None]:
    """Category -> code (or None = drop) after applying ``user_map`` to the defaults."""
    table: dict[str, str | None] = dict(recipe.categories)
    problems = []
    for key, value in user_map.items():
        cat = recipe.map_key(key)
        if cat is None:
            problems.append(f"{key!r} is not a {recipe.name} emotion category (categories: "
                            f"{', '.join(recipe.categories)})")
            continue
        code = recipe.code_of(value)
        if code is None:
            problems.append(f"{key}={value}: {value!r} is not one of {', '.join(EMOTIONS)}, an emotion name "
                            f"or 'drop'")
            continue
        table[cat] = None if code == DROP else code
    if problems:
        raise CorpusError(f"label map for {recipe.name}", problems)
    return table


# -- files -------------------------------------------------------------------------------
def media_files(root: Path, extensions: Sequence[str] = MEDIA_EXTENSIONS) -> list[Path]:
    """Media files under ``root`` (recursively; hidden files and folders skipped), sorted."""
    exts = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def match_files(root: Path, pattern: re.Pattern) -> tuple[list[tuple[Path, str, re.Match]], list[str]]:
    """The media files under ``root`` whose clip id (the name up to its first dot) ``pattern``
    matches, as ``(path, clip id, match)``, and the others (paths relative to ``root``: skipped)."""
    matched, skipped = [], []
    for p in media_files(root):
        cid = p.name.split(".", 1)[0]
        m = pattern.match(cid)
        if m is None:
            skipped.append(p.relative_to(root).as_posix())
        else:
            matched.append((p, cid, m))
    return matched, skipped


def _one_per_clip(found: list[Found]) -> tuple[list[Found], list[str]]:
    """One file per clip id (extension preference of :data:`blemore.media.MEDIA_EXTENSIONS`);
    the same id and extension twice is a clash (returned as problems)."""
    rank = {e: i for i, e in enumerate(MEDIA_EXTENSIONS)}
    chosen: dict[str, Found] = {}
    clashes = []
    for f in found:
        prev = chosen.get(f.clip_id)
        r = rank.get(f.path.suffix.lower(), len(rank))
        if prev is None or r < rank.get(prev.path.suffix.lower(), len(rank)):
            chosen[f.clip_id] = f
        elif r == rank.get(prev.path.suffix.lower(), len(rank)):
            clashes.append(f"clip {f.clip_id!r} has two files: {prev.path} and {f.path}")
    return [chosen[c] for c in sorted(chosen)], clashes


# -- folds -------------------------------------------------------------------------------
def assign_folds(meta: pd.DataFrame, folds: int | str = 5, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """``meta`` (``filename``, ``actor``, ``gender``, ``corpus`` columns) with an actor-disjoint
    ``fold`` column, and a line saying what was done. Actors are namespaced by corpus, so
    folds are disjoint by actor within each corpus. ``folds`` is ``k`` (at most one fold per
    actor) or ``"loso"``; with a single actor no folds are made (the column stays empty)."""
    meta = meta.copy()
    actor = [f"{c}:{a}" if isinstance(c, str) and c else str(a)
             for a, c in zip(meta["actor"], meta.get("corpus", pd.Series([None] * len(meta))))]
    n_actors = len(set(actor))
    t = pd.DataFrame({"clip_id": meta["filename"].tolist(), "actor": actor, "split": "train", "fold": -1})
    genders = [g if isinstance(g, str) and g else None for g in meta.get("gender", pd.Series([None] * len(meta)))]
    t["gender"] = genders
    if n_actors < 2:
        meta["fold"] = ""
        return meta, f"{n_actors} actor: no cross-validation folds made (usable as a test set)"
    if str(folds).lower() == "loso":
        f = leave_one_actor_out(t)["fold"].to_numpy()
        line = f"{n_actors} leave-one-actor-out folds"
    else:
        try:
            k = int(folds)
        except (TypeError, ValueError):
            raise CorpusError("folds", f"{folds!r} is neither a number of folds nor 'loso'") from None
        if k < 2:
            raise CorpusError("folds", f"need at least 2 folds, got {k}")
        k_used = min(k, n_actors)
        gcol = "gender" if all(g is not None for g in genders) else None
        f = make_folds(t, k=k_used, seed=seed, gender_column=gcol)["fold"].to_numpy()
        line = (f"{k_used} actor-disjoint folds" + (f" (only {n_actors} actors for {k})" if k_used < k else "")
                + (", balanced by gender" if gcol else ""))
    meta["fold"] = [str(int(x)) for x in np.asarray(f)]
    return meta, line


# -- the result ----------------------------------------------------------------------------
@dataclass
class CorpusResult:
    """What :func:`prepare` made: the metadata and what happened to every file."""

    recipe: str
    root: Path
    metadata: pd.DataFrame
    found: int
    dropped: dict[str, int]
    mapped: dict[str, str]
    mapped_counts: dict[str, int]
    skipped: list[str]
    folds: str
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[str]:
        """Lines saying what was kept, dropped, mapped and skipped (nothing silently lost)."""
        n = len(self.metadata)
        actors = self.metadata["actor"].nunique() if n else 0
        lines = [f"{self.recipe}: {self.found} clip(s) found in {self.root}, {n} kept "
                 f"({actors} actor{'s' if actors != 1 else ''}); {self.folds}"]
        if self.dropped:
            per = ", ".join(f"{c} {k}" for c, k in sorted(self.dropped.items()))
            lines.append(f"dropped {sum(self.dropped.values())} clip(s) outside the label space: {per} "
                         f"(keep them with --map CATEGORY=CODE, e.g. --map {next(iter(sorted(self.dropped)))}=neu)")
        if self.mapped_counts:
            per = ", ".join(f"{c} -> {self.mapped[c]} ({k})" for c, k in sorted(self.mapped_counts.items()))
            lines.append(f"mapped: {per}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} media file(s) not named by the {self.recipe} scheme: "
                         + ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else ""))
        for msg in self.extra.get("notes", []):
            lines.append(msg)
        return lines

    def link_media(self, folder: str | os.PathLike) -> int:
        """Symbolic links ``folder/<clip_id><ext>`` to the kept media files, so that tools that
        take clip ids from file names (``blemore extract``) see unique names even where the
        corpus repeats them (MEAD's ``001.mp4``). Existing links to the same file are kept;
        anything else already there is an error. Returns the number of links made."""
        dest = Path(folder)
        dest.mkdir(parents=True, exist_ok=True)
        made, problems = 0, []
        for cid, rel in zip(self.metadata["filename"], self.metadata["path"]):
            src = (self.root / rel).resolve()
            link = dest / f"{cid}{Path(rel).suffix}"
            if link.is_symlink() and link.resolve() == src:
                continue
            if link.exists() or link.is_symlink():
                problems.append(f"{link} already exists")
                continue
            link.symlink_to(src)
            made += 1
        if problems:
            raise CorpusError(str(dest), problems)
        return made

    def write(self, csv_path: str | os.PathLike) -> Path:
        """Write the metadata CSV atomically (UTF-8)."""
        return atomic_write_bytes(csv_path, self.metadata.to_csv(index=False).encode("utf-8"))


def prepare(name: str, root: str | os.PathLike, *, map: Mapping[str, str] | Iterable[str] | None = None,
            folds: int | str = 5, seed: int = 0, **options: Any) -> CorpusResult:
    """Run recipe ``name`` on the corpus folder ``root`` (see the module docstring)."""
    recipe: Recipe = RECIPES.create(name)
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(str(root), "not a folder")
    user_map = parse_map(map)
    direct = recipe.build(root, user_map, folds, seed, **options)
    if direct is not None:
        return direct
    table = _resolve_map(recipe, user_map)
    found, skipped = recipe.scan(root, **options)
    found, clashes = _one_per_clip(found)
    unknown: dict[str, list[str]] = {}
    for f in found:
        f.category = recipe.category_of(f.category) or f.category
        if f.category not in table:
            unknown.setdefault(f.category, []).append(f.path.name)
    problems = clashes + [f"unknown {recipe.name} emotion code {c!r} in {len(v)} file(s), e.g. {v[0]} "
                          f"(known: {', '.join(recipe.categories)}; or --map {c}=CODE)" for c, v in sorted(unknown.items())]
    if problems:
        raise CorpusError(str(root), problems)
    if not found:
        raise CorpusError(str(root), f"no media files named by the {recipe.name} scheme ({recipe.naming})"
                          + (f"; {len(skipped)} other media file(s), e.g. {skipped[0]}" if skipped else ""))
    rows, dropped, mapped_counts = [], Counter(), Counter()
    for f in found:
        code = table[f.category]
        if code is None:
            dropped[f.category] += 1
            continue
        if recipe.categories.get(f.category) != code:
            mapped_counts[f.category] += 1
        rows.append({"filename": f.clip_id, "actor": f.actor, "gender": f.gender or "", "emotion_1": code,
                     "intensity": "" if f.intensity is None else str(f.intensity), "corpus": recipe.name,
                     "fold": "", "source_emotion": f.category,
                     "path": f.path.relative_to(root).as_posix(), **{k: f.extra.get(k, "") for k in recipe.columns()}})
    meta = pd.DataFrame(rows, columns=list(METADATA_COLUMNS) + list(recipe.columns()), dtype=object)
    if len(meta):
        meta, fold_line = assign_folds(meta, folds, seed)
    else:
        fold_line = "no clips left"
    mapped = {c: str(table[c]) for c in mapped_counts}
    return CorpusResult(recipe.name, root, meta, len(found), dict(dropped), mapped, dict(mapped_counts),
                        list(skipped), fold_line)


def combine(paths: Sequence[str | os.PathLike], *, folds: int | str | None = None, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Concatenate metadata CSVs of several corpora into one training table.

    Each file keeps its rows and columns; a file without a ``corpus`` column gets one named
    after the file (its stem). A clip id in two files is an error. Folds: kept as they are
    (actors are namespaced per corpus, so fold ``k`` of two corpora stays actor-disjoint),
    or remade over all corpora when ``folds`` is given (``k`` or ``"loso"``).
    """
    parts = []
    for p in paths:
        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise CorpusError(str(p), "file not found") from None
        df.columns = [str(c).strip() for c in df.columns]
        lower = {c.lower(): c for c in df.columns}
        if "corpus" not in lower:
            df["corpus"] = Path(p).stem
        elif lower["corpus"] != "corpus":
            df = df.rename(columns={lower["corpus"]: "corpus"})
        df.loc[df["corpus"].str.strip() == "", "corpus"] = Path(p).stem
        parts.append(df)
    if not parts:
        raise CorpusError("combine", "no metadata files given")
    out = pd.concat(parts, ignore_index=True).fillna("")
    name_col = next((c for c in out.columns if c.lower() in ("filename", "file_name", "file", "clip_id", "clip")), None)
    if name_col is None:
        raise CorpusError("combine", "no 'filename' column")
    ids = out[name_col].map(lambda s: re.split(r"[\\/]", str(s))[-1].split(".", 1)[0])
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise CorpusError("combine", [f"clip {c!r} appears in more than one file" for c in dup])
    line = "folds kept from each file"
    if folds is not None:
        if "actor" not in out.columns:
            raise CorpusError("combine", "remaking folds needs an 'actor' column in every file")
        tmp = out.rename(columns={name_col: "filename"}) if name_col != "filename" else out
        tmp, line = assign_folds(tmp, folds, seed)
        out["fold"] = tmp["fold"].values
    return out, line
