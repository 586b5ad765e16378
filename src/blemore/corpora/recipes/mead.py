"""MEAD: 60 actors ``M0xx`` (male) / ``W0xx`` (female), 8 emotions, 3 levels, 7 camera views.

Layouts read (anywhere under the corpus folder):

- the release layout ``M003/video/front/angry/level_1/001.mp4`` (clip id
  ``M003_front_angry_level_1_001``) and ``M003/audio/angry/level_1/001.m4a`` (clip id
  ``M003_audio_angry_level_1_001``): the folder parts make the id unique;
- flat copies ``M030_front_angry_level_3_001.mp4`` and ``M030_front_angry_level3_001.mp4``
  (clip id = the file name without extension, unchanged).

``view="front"`` keeps one camera view (``audio`` keeps the audio files). Maps: angry -> ang,
disgusted -> disg, fear -> fea, happy -> hap, neutral -> neu, sad -> sad; contempt and
surprised are outside the label space (dropped unless mapped). Intensity = level 1..3.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from blemore.corpora.base import RECIPES, CorpusError, Found, Recipe, media_files

VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
_V = "|".join(VIEWS)
_RELEASE_VIDEO = re.compile(rf"(?:^|/)(?P<actor>[MW]\d{{3}})/video/(?P<view>{_V})/(?P<emo>[a-z_]+)/"
                            r"level_(?P<level>\d+)/(?P<num>\d+)$")
_RELEASE_AUDIO = re.compile(r"(?:^|/)(?P<actor>[MW]\d{3})/audio/(?P<emo>[a-z_]+)/level_(?P<level>\d+)/(?P<num>\d+)$")
_FLAT = re.compile(rf"^(?P<actor>[MW]\d{{3}})_(?P<view>{_V}|audio)_(?P<emo>[a-z]+)_level_?(?P<level>\d+)_(?P<num>\d+)$")


@RECIPES.register("mead")
class Mead(Recipe):
    naming = ("M003/video/front/angry/level_1/001.mp4, M003/audio/angry/level_1/001.m4a, "
              "M030_front_angry_level_3_001.mp4 or M030_front_angry_level3_001.mp4")
    categories = {"angry": "ang", "disgusted": "disg", "contempt": None, "fear": "fea", "happy": "hap",
                  "neutral": "neu", "sad": "sad", "surprised": None}
    synonyms = {"anger": "angry", "ang": "angry", "disgust": "disgusted", "disg": "disgusted", "fearful": "fear",
                "fea": "fear", "happiness": "happy", "hap": "happy", "neu": "neutral", "sadness": "sad",
                "surprise": "surprised", "sur": "surprised", "contemptuous": "contempt", "con": "contempt"}

    def columns(self) -> tuple[str, ...]:
        return ("view", "take")

    def scan(self, root: Path, view: str | None = None, **options: Any) -> tuple[list[Found], list[str]]:
        if options:
            raise CorpusError("mead", f"unknown option(s) {sorted(options)}; known: view")
        if view is not None and view not in VIEWS + ("audio",):
            raise CorpusError("mead", f"view must be one of {', '.join(VIEWS + ('audio',))}, got {view!r}")
        found, skipped = [], []
        for p in media_files(root):
            rel = p.relative_to(root).with_suffix("").as_posix()
            stem = p.name.split(".", 1)[0]
            m = _RELEASE_VIDEO.search(rel) or _RELEASE_AUDIO.search(rel)
            if m is not None:
                v = m.groupdict().get("view") or "audio"
                cid = f"{m['actor']}_{v}_{m['emo']}_level_{m['level']}_{m['num']}"
            else:
                m = _FLAT.match(stem)
                if m is None:
                    skipped.append(p.relative_to(root).as_posix())
                    continue
                v, cid = m["view"], stem
            if view is not None and v != view:
                continue
            found.append(Found(cid, p, m["actor"], m["emo"], "m" if m["actor"][0] == "M" else "f",
                               int(m["level"]), {"view": v, "take": m["num"]}))
        return found, skipped
