"""Any corpus whose file paths say actor and emotion: a regular expression with named groups.

``pattern`` is searched in each media file's path relative to the corpus folder, without
the extension and with ``/`` between folders, e.g. ``(?P<actor>\\d+)_(?P<emotion>[A-Z]+)_``
or ``(?P<actor>[^/]+)/(?P<emotion>[^/]+)/``. Groups: ``actor`` and ``emotion`` (required),
``gender``, ``intensity`` (an integer) and ``id`` (the clip id; default the file name without
extension) (optional). Files the pattern does not match are skipped and counted.

Emotions: the six codes (``ang disg fea hap sad neu``) and their English names (anger,
disgust, fear, happiness, sadness, neutral) are taken as they are; every other value needs a
``--map VALUE=CODE`` (or ``VALUE=drop``) or the run stops naming it: nothing is guessed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from blemore.corpora.base import RECIPES, CorpusError, Found, Recipe, media_files
from blemore.labels import EMOTION_NAMES, EMOTIONS


@RECIPES.register("generic")
class Generic(Recipe):
    naming = "a regular expression with named groups actor and emotion (--pattern)"
    categories: Mapping[str, str | None] = {**{e: e for e in EMOTIONS}, **{n: c for c, n in EMOTION_NAMES.items()}}
    synonyms: Mapping[str, str] = {}

    def __init__(self) -> None:
        self.categories = dict(type(self).categories)

    def scan(self, root: Path, pattern: str | None = None, **options: Any) -> tuple[list[Found], list[str]]:
        if options:
            raise CorpusError("generic", f"unknown option(s) {sorted(options)}; known: pattern")
        if not pattern:
            raise CorpusError("generic", "needs a pattern with named groups actor and emotion, e.g. "
                              r"--pattern '(?P<actor>\d+)_(?P<emotion>[A-Za-z]+)_'")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise CorpusError("generic", f"pattern {pattern!r} is not a regular expression ({e})") from None
        missing = {"actor", "emotion"} - set(rx.groupindex)
        if missing:
            raise CorpusError("generic", f"pattern {pattern!r} has no named group(s) {sorted(missing)}")
        found, skipped = [], []
        for p in media_files(root):
            rel = p.relative_to(root).with_suffix("").as_posix()
            m = rx.search(rel)
            if m is None or not m["actor"] or not m["emotion"]:
                skipped.append(p.relative_to(root).as_posix())
                continue
            g = m.groupdict()
            gender = (g.get("gender") or "").strip().lower() or None
            gender = {"male": "m", "man": "m", "female": "f", "woman": "f", "w": "f"}.get(gender or "", gender)
            inten = g.get("intensity")
            found.append(Found(g.get("id") or p.name.split(".", 1)[0], p, m["actor"], m["emotion"], gender,
                               int(inten) if inten and inten.isdigit() else None))
        return found, skipped

    def map_key(self, key: str) -> str | None:
        # any value the pattern captures can be mapped (values never mapped are named by prepare)
        c = self.category_of(key)
        if c is None:
            self.categories[key.strip()] = None
            c = key.strip()
        return c
