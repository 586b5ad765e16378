"""RAVDESS: ``MM-VV-EE-II-SS-RR-AA.ext`` (seven two-digit fields), usually under ``Actor_NN/``.

Fields: modality (01 audio-video, 02 video only, 03 audio only), vocal channel (01 speech,
02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
08 surprised), intensity (01 normal, 02 strong), statement (01, 02), repetition (01, 02),
actor (01-24; odd male, even female). The clip id is the file name without extension, so
the audio-video, video-only and audio-only files of one performance are three clips (same
actor, so always in the same fold); ``modality="audio"`` (or ``av`` / ``video``) and
``channel="speech"`` (or ``song``) keep one kind.

Maps: neutral -> neu, happy -> hap, sad -> sad, angry -> ang, fearful -> fea,
disgust -> disg; calm and surprised are outside the label space (dropped unless mapped).
Intensity 1 (normal) or 2 (strong).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from blemore.corpora.base import RECIPES, CorpusError, Found, Recipe, media_files

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_EMOTION_CODES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                  "06": "fearful", "07": "disgust", "08": "surprised"}
_MODALITY = {"01": "av", "02": "video", "03": "audio"}
_CHANNEL = {"01": "speech", "02": "song"}


@RECIPES.register("ravdess")
class Ravdess(Recipe):
    naming = "MM-VV-EE-II-SS-RR-AA.ext, e.g. 03-01-05-02-01-01-12.wav"
    categories = {"neutral": "neu", "calm": None, "happy": "hap", "sad": "sad", "angry": "ang",
                  "fearful": "fea", "disgust": "disg", "surprised": None}
    synonyms = {**{k: v for k, v in _EMOTION_CODES.items()},
                "neu": "neutral", "hap": "happy", "happiness": "happy", "sadness": "sad", "ang": "angry",
                "anger": "angry", "fear": "fearful", "fea": "fearful", "disgusted": "disgust", "disg": "disgust",
                "surprise": "surprised", "sur": "surprised"}

    def columns(self) -> tuple[str, ...]:
        return ("modality", "channel", "statement", "repetition")

    def scan(self, root: Path, modality: str | None = None, channel: str | None = None,
             **options: Any) -> tuple[list[Found], list[str]]:
        if options:
            raise CorpusError("ravdess", f"unknown option(s) {sorted(options)}; known: modality, channel")
        for name, value, allowed in (("modality", modality, _MODALITY.values()),
                                     ("channel", channel, _CHANNEL.values())):
            if value is not None and value not in allowed:
                raise CorpusError("ravdess", f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        found, skipped = [], []
        for p in media_files(root):
            m = _NAME.match(p.name.split(".", 1)[0])
            if m is None or m.group(1) not in _MODALITY or m.group(2) not in _CHANNEL:
                skipped.append(p.relative_to(root).as_posix())
                continue
            mod, ch, emo, inten, stmt, rep, actor = m.groups()
            if (modality and _MODALITY[mod] != modality) or (channel and _CHANNEL[ch] != channel):
                continue
            a = int(actor)
            found.append(Found(
                clip_id=p.name.split(".", 1)[0], path=p, actor=actor,
                category=_EMOTION_CODES.get(emo, emo), gender="m" if a % 2 else "f",
                intensity=int(inten) if inten in ("01", "02") else None,
                extra={"modality": _MODALITY[mod], "channel": _CHANNEL[ch], "statement": stmt, "repetition": rep}))
        return found, skipped
