"""Emotion codes, the BLEMORE clip-id grammar, labels, soft targets and the 36 targets.

Everything downstream (metrics, decoding, heads, submissions) speaks in the small
integer codes defined here, so that scoring is a vectorised comparison:

* ``mask``: a 6-bit emotion-set mask, bit ``i`` set when ``EMOTIONS[i]`` is present
  (0 = empty prediction). Presence accuracy compares masks.
* ``set_index``: 0..15, the 16 valid emotion sets (6 singles, then the 10 pairs);
  ``INVALID`` (-1) for anything else.
* ``target``: 0..35, the 36 valid targets (6 singles, then 10 pairs x 3 saliences);
  ``INVALID`` (-1) for anything else. Salience accuracy compares targets.

Target order: singles in ``EMOTIONS`` order, then for each pair in ``PAIRS`` order
(canonical: ang < disg < fea < hap < sad) the three ratios in ``RATIOS`` order, where a
ratio is the salience of the pair's *first* (canonical) emotion: 30 (second dominant),
50 (equal), 70 (first dominant).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Iterable, Mapping, Sequence

import numpy as np

from blemore.errors import BlemoreError

EMOTIONS: tuple[str, ...] = ("ang", "disg", "fea", "hap", "sad", "neu")
"""The six codes in the canonical order used for every 6-d vector."""

BLEND_EMOTIONS: tuple[str, ...] = EMOTIONS[:5]
"""The five emotions that occur in blends (neutral never does)."""

EMOTION_NAMES: dict[str, str] = {
    "ang": "anger",
    "disg": "disgust",
    "fea": "fear",
    "hap": "happiness",
    "sad": "sadness",
    "neu": "neutral",
}
NEUTRAL = "neu"
EMOTION_INDEX: dict[str, int] = {e: i for i, e in enumerate(EMOTIONS)}

PAIRS: tuple[tuple[str, str], ...] = tuple(itertools.combinations(BLEND_EMOTIONS, 2))
"""The 10 unordered pairs, each in canonical order."""

_PAIR_SET = frozenset(PAIRS)

RATIOS: tuple[int, ...] = (30, 50, 70)
"""Salience of a pair's first emotion, in ratio-index order."""

INVALID = -1
N_SETS = len(EMOTIONS) + len(PAIRS)  # 16
N_TARGETS = len(EMOTIONS) + 3 * len(PAIRS)  # 36

GRAMMAR = (
    "A<actor>_<emotion>_int<1-4>_ver<n> (emotion: ang, disg, fea, hap, sad), "
    "A<actor>_neu_sit<1-4>_ver<n>, "
    "A<actor>_mix_<e1>_<e2>_<s1>_<s2>_ver<n> (e1 before e2 in ang < disg < fea < hap < sad; "
    "s1_s2: 50_50, 70_30 or 30_70), "
    "or an anonymised test id test_<n>; a file extension such as .mov is ignored"
)

_E = "|".join(BLEND_EMOTIONS)
# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits; \Z, not $: $ also
# matches before a trailing newline.
_RE_SINGLE = re.compile(rf"^A(?P<actor>[0-9]+)_(?P<emo>{_E})_int(?P<level>[1-4])_ver(?P<ver>[0-9]+)\Z")
_RE_NEUTRAL = re.compile(r"^A(?P<actor>[0-9]+)_neu_sit(?P<level>[1-4])_ver(?P<ver>[0-9]+)\Z")
_RE_BLEND = re.compile(
    rf"^A(?P<actor>[0-9]+)_mix_(?P<e1>{_E})_(?P<e2>{_E})_(?P<s1>[0-9]+)_(?P<s2>[0-9]+)_ver(?P<ver>[0-9]+)\Z"
)
_RE_TEST = re.compile(r"^test_(?P<num>[0-9]+)\Z")
# near misses that get a specific message
_RE_NEU_INT = re.compile(r"^A[0-9]+_neu_int[0-9]+_ver[0-9]+\Z")
_RE_EMO_SIT = re.compile(rf"^A[0-9]+_(?:{_E})_sit[0-9]+_ver[0-9]+\Z")
_RE_LEVEL = re.compile(rf"^A[0-9]+_(?:(?:{_E})_int|neu_sit)(?P<level>[0-9]+)_ver[0-9]+\Z")
_MAX_DIGITS = 9
"""Actor and version numbers longer than this are refused (they are never that long, and
int() of thousands of digits hits Python's conversion limit)."""


def _short(cid: str, n: int = 80) -> str:
    r = repr(cid)
    return r if len(r) <= n else f"{r[:n - 20]}...{r[-12:]} ({len(cid)} characters)"


class ClipIdError(BlemoreError, ValueError):
    """One or more clip ids do not follow the BLEMORE grammar."""

    def __init__(self, bad: Sequence[tuple[str, str]], source: str | None = None):
        self.bad = list(bad)
        self.source = source
        lines = [f"  {_short(cid)}: {why}" for cid, why in self.bad[:50]]
        if len(self.bad) > 50:
            lines.append(f"  ... and {len(self.bad) - 50} more")
        n = len(self.bad)
        head = (f"{source}: " if source else "") + f"{n} malformed BLEMORE clip id{'s' if n != 1 else ''}:"
        super().__init__(head + "\n" + "\n".join(lines) + f"\nExpected grammar: {GRAMMAR}")


class LabelError(BlemoreError, ValueError):
    """A label (emotions and saliences) outside the BLEMORE label space."""


@dataclass(frozen=True, order=True)
class Label:
    """A set of emotions with saliences (percent), in canonical emotion order.

    ``Label(("hap",), (100,))`` is a single emotion; ``Label(("disg", "hap"), (30, 70))`` is
    a blend with happiness dominant. Construct with :meth:`single`, :meth:`blend`,
    :meth:`parse`, :meth:`from_target` or :meth:`from_pairs`, which validate and order.
    """

    emotions: tuple[str, ...]
    saliences: tuple[int, ...]

    def __post_init__(self) -> None:
        # direct construction must give the same canonical values as the constructors
        e, s = tuple(self.emotions), tuple(self.saliences)
        ok = (len(e) == 1 and e[0] in EMOTION_INDEX and s == (100,)) or (
            len(e) == 2 and e in _PAIR_SET and s in ((30, 70), (50, 50), (70, 30))
        )
        if not ok or any(type(x) is not int for x in s):
            raise LabelError(
                f"invalid label {e}/{s}: a single emotion with salience (100,), or a canonical pair "
                "(ang < disg < fea < hap < sad) with integer saliences 30/70, 50/50 or 70/30; "
                "use Label.single / Label.blend to validate and order"
            )

    # -- constructors -------------------------------------------------------------
    @classmethod
    def single(cls, emotion: str) -> "Label":
        if emotion not in EMOTION_INDEX:
            raise LabelError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
        return cls((emotion,), (100,))

    @classmethod
    def blend(cls, e1: str, s1: float, e2: str, s2: float) -> "Label":
        """A blend of two distinct non-neutral emotions; order of arguments is free."""
        for e in (e1, e2):
            if e not in EMOTION_INDEX:
                raise LabelError(f"unknown emotion {e!r}; expected one of {', '.join(EMOTIONS)}")
            if e == NEUTRAL:
                raise LabelError("neutral never occurs in a blend")
        if e1 == e2:
            raise LabelError(f"a blend needs two different emotions, got {e1!r} twice")
        r1, r2 = _round_salience(s1), _round_salience(s2)
        if (r1, r2) not in ((50, 50), (70, 30), (30, 70)):
            raise LabelError(f"blend saliences must be 50/50, 70/30 or 30/70, got {s1}/{s2}")
        if EMOTION_INDEX[e1] > EMOTION_INDEX[e2]:
            e1, e2, r1, r2 = e2, e1, r2, r1
        return cls((e1, e2), (r1, r2))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, float]]) -> "Label":
        """From ``[(emotion, salience), ...]`` with one or two entries."""
        pairs = list(pairs)
        if len(pairs) == 1:
            return cls.single(pairs[0][0])
        if len(pairs) == 2:
            (e1, s1), (e2, s2) = pairs
            return cls.blend(e1, s1, e2, s2)
        raise LabelError(f"a label has one or two emotions, got {len(pairs)}")

    @classmethod
    def from_prediction(cls, entries: Sequence[Mapping]) -> "Label":
        """From the challenge format ``[{"emotion": .., "salience": ..}, ...]``."""
        return cls.from_pairs((str(d["emotion"]), float(d["salience"])) for d in entries)

    @classmethod
    def from_target(cls, index: int) -> "Label":
        """The label of target index 0..35."""
        return TARGETS[index]

    @classmethod
    def parse(cls, clip_id: str) -> "Label":
        """The label encoded in a training clip id (raises for test ids and malformed ids)."""
        info = parse_clip_id(clip_id)
        if info.label is None:
            raise ClipIdError([(clip_id, "anonymised test ids carry no label")])
        return info.label

    # -- views --------------------------------------------------------------------
    @property
    def is_blend(self) -> bool:
        return len(self.emotions) == 2

    @property
    def mask(self) -> int:
        m = 0
        for e in self.emotions:
            m |= 1 << EMOTION_INDEX[e]
        return m

    def soft(self) -> np.ndarray:
        """The paper's 6-d target: one-hot for singles, saliences / 100 for blends."""
        v = np.zeros(len(EMOTIONS), dtype=np.float32)
        for e, s in zip(self.emotions, self.saliences):
            v[EMOTION_INDEX[e]] = s / 100.0
        return v

    def set_index(self) -> int:
        """0..15: the emotion set (6 singles, then the 10 pairs)."""
        if not self.is_blend:
            return EMOTION_INDEX[self.emotions[0]]
        return len(EMOTIONS) + PAIRS.index(self.emotions)  # type: ignore[arg-type]

    def target_index(self) -> int:
        """0..35: the full target (set and salience configuration)."""
        if not self.is_blend:
            return EMOTION_INDEX[self.emotions[0]]
        p = PAIRS.index(self.emotions)  # type: ignore[arg-type]
        return len(EMOTIONS) + 3 * p + RATIOS.index(self.saliences[0])

    def ratio_index(self) -> int:
        """0 (30/70), 1 (50/50), 2 (70/30) for blends, in the pair's canonical order."""
        if not self.is_blend:
            raise LabelError("a single emotion has no ratio")
        return RATIOS.index(self.saliences[0])

    def name(self) -> str:
        """Composite name: ``hap`` or ``ang+hap 70/30``."""
        if not self.is_blend:
            return self.emotions[0]
        return f"{self.emotions[0]}+{self.emotions[1]} {self.saliences[0]}/{self.saliences[1]}"

    def to_prediction(self) -> list[dict]:
        """The challenge format. A single emotion carries salience 100.0."""
        if not self.is_blend:
            return [{"emotion": self.emotions[0], "salience": 100.0}]
        return [{"emotion": e, "salience": float(s)} for e, s in zip(self.emotions, self.saliences)]

    def clip_id_stem(self) -> str:
        """The label part of a clip id: ``hap_int1``-less form used by :func:`format_clip_id`."""
        if not self.is_blend:
            return self.emotions[0]
        return f"mix_{self.emotions[0]}_{self.emotions[1]}_{self.saliences[0]}_{self.saliences[1]}"

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.name()


def _round_salience(s: float | int | str) -> int:
    """Round a salience as the challenge scorer does (``int(round(float(s)))``)."""
    try:
        return int(round(float(s)))
    except (TypeError, ValueError, OverflowError):
        raise LabelError(f"salience {s!r} is not a finite number") from None


TARGETS: tuple[Label, ...] = tuple(
    [Label.single(e) for e in EMOTIONS]
    + [Label.blend(a, r, b, 100 - r) for (a, b) in PAIRS for r in RATIOS]
)
"""The 36 distinct targets, indexed by :meth:`Label.target_index`."""

TARGET_NAMES: tuple[str, ...] = tuple(t.name() for t in TARGETS)
SET_NAMES: tuple[str, ...] = tuple(EMOTIONS) + tuple(f"{a}+{b}" for a, b in PAIRS)

# mask (0..63) -> set index or INVALID
MASK_TO_SET = np.full(64, INVALID, dtype=np.int64)
for _i, _e in enumerate(EMOTIONS):
    MASK_TO_SET[1 << _i] = _i
for _p, (_a, _b) in enumerate(PAIRS):
    MASK_TO_SET[(1 << EMOTION_INDEX[_a]) | (1 << EMOTION_INDEX[_b])] = len(EMOTIONS) + _p
SET_TO_MASK = np.array([int(np.flatnonzero(MASK_TO_SET == s)[0]) for s in range(N_SETS)], dtype=np.int64)
TARGET_TO_SET = np.array([t.set_index() for t in TARGETS], dtype=np.int64)
TARGET_TO_MASK = SET_TO_MASK[TARGET_TO_SET]
TARGET_IS_BLEND = np.array([t.is_blend for t in TARGETS], dtype=bool)
TARGET_SOFT = np.stack([t.soft() for t in TARGETS])  # (36, 6)


@dataclass(frozen=True)
class ClipInfo:
    """What a clip id says. ``label`` is None for anonymised test ids."""

    clip_id: str
    actor: str | None
    label: Label | None
    kind: str  # "single", "neutral", "blend" or "test"
    level: int | None = None  # intensity 1-4 (single) or situation 1-4 (neutral)
    version: int | None = None


def clip_id_from_path(name: str | PurePath) -> str:
    """Strip folders and extensions: ``/x/A102_ang_int1_ver1.mov`` -> ``A102_ang_int1_ver1``."""
    base = PurePath(str(name)).name
    return base.split(".", 1)[0]


def _near_miss(cid: str) -> str:
    """Why an id that does not match the grammar is wrong, as specifically as we can say."""
    if not cid:
        return "is empty"
    if not cid.isascii():
        return "contains non-ASCII characters (the grammar uses ASCII letters, digits 0-9 and '_')"
    if _RE_NEU_INT.match(cid):
        return "neutral clips use sit<n> (the imagined situation, 1-4), not int<n>"
    if _RE_EMO_SIT.match(cid):
        return "emotion clips use int<n> (the intensity, 1-4); sit<n> is for neutral clips"
    m = _RE_LEVEL.match(cid)
    if m:
        return f"intensity/situation {m['level']} is not 1-4"
    return "does not match the grammar"


def _parse_one(raw: str) -> ClipInfo | str:
    cid = clip_id_from_path(raw)
    m = _RE_SINGLE.match(cid) or _RE_NEUTRAL.match(cid) or _RE_BLEND.match(cid)
    if m is not None:
        for part in ("actor", "ver"):
            if len(m[part]) > _MAX_DIGITS:
                what = "actor" if part == "actor" else "version"
                return f"the {what} number has {len(m[part])} digits (at most {_MAX_DIGITS})"
    m = _RE_SINGLE.match(cid)
    if m:
        return ClipInfo(cid, "A" + m["actor"], Label.single(m["emo"]), "single", int(m["level"]), int(m["ver"]))
    m = _RE_NEUTRAL.match(cid)
    if m:
        return ClipInfo(cid, "A" + m["actor"], Label.single(NEUTRAL), "neutral", int(m["level"]), int(m["ver"]))
    m = _RE_BLEND.match(cid)
    if m:
        if m["e1"] == m["e2"]:
            return "a blend needs two different emotions"
        if EMOTION_INDEX[m["e1"]] > EMOTION_INDEX[m["e2"]]:
            return f"blend emotions must be in the order ang < disg < fea < hap < sad ({m['e2']} before {m['e1']})"
        s1, s2 = int(m["s1"]), int(m["s2"])
        if (s1, s2) not in ((50, 50), (70, 30), (30, 70)):
            return f"blend saliences {s1}_{s2} are not 50_50, 70_30 or 30_70"
        return ClipInfo(cid, "A" + m["actor"], Label.blend(m["e1"], s1, m["e2"], s2), "blend", None, int(m["ver"]))
    m = _RE_TEST.match(cid)
    if m:
        return ClipInfo(cid, None, None, "test")
    return _near_miss(cid)


def parse_clip_id(clip_id: str) -> ClipInfo:
    """Parse one clip id (or file name / path). Raises :class:`ClipIdError` naming it."""
    r = _parse_one(clip_id)
    if isinstance(r, str):
        raise ClipIdError([(str(clip_id), r)])
    return r


def parse_clip_ids(clip_ids: Iterable[str]) -> list[ClipInfo]:
    """Parse many ids; a single :class:`ClipIdError` lists *every* malformed one."""
    out, bad = [], []
    for cid in clip_ids:
        r = _parse_one(cid)
        if isinstance(r, str):
            bad.append((str(cid), r))
        else:
            out.append(r)
    if bad:
        raise ClipIdError(bad)
    return out


def format_clip_id(actor: str | int, label: Label, level: int = 1, version: int = 1) -> str:
    """The clip id of a label, e.g. ``format_clip_id(438, blend) -> 'A438_mix_disg_hap_30_70_ver1'``.

    ``level`` is the intensity (singles) or situation (neutral), ignored for blends.
    """
    a = str(actor)
    a = a if a.startswith("A") else f"A{a}"
    if label.is_blend:
        return f"{a}_{label.clip_id_stem()}_ver{version}"
    e = label.emotions[0]
    if e == NEUTRAL:
        return f"{a}_neu_sit{level}_ver{version}"
    return f"{a}_{e}_int{level}_ver{version}"


# -- array codes -----------------------------------------------------------------------
def encode_labels(labels: Sequence[Label | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, target)`` int64 arrays; ``None`` (no prediction) gives mask 0, target INVALID."""
    n = len(labels)
    mask = np.zeros(n, dtype=np.int64)
    target = np.full(n, INVALID, dtype=np.int64)
    for i, lab in enumerate(labels):
        if lab is not None:
            mask[i] = lab.mask
            target[i] = lab.target_index()
    return mask, target


def encode_prediction(entries: Sequence[Mapping]) -> tuple[int, int]:
    """Encode one challenge-format prediction into ``(mask, target)`` without validating it
    into the label space: any set of known emotions gets its mask (so presence can be scored),
    and the target is INVALID unless the prediction is exactly one valid label.

    Unknown emotion codes raise :class:`LabelError`.
    """
    mask = 0
    for d in entries:
        e = str(d["emotion"])
        if e not in EMOTION_INDEX:
            raise LabelError(f"unknown emotion {e!r}; expected one of {', '.join(EMOTIONS)}")
        mask |= 1 << EMOTION_INDEX[e]
    try:
        target = Label.from_prediction(entries).target_index()
    except (LabelError, KeyError, TypeError, ValueError):
        target = INVALID
    return mask, target


def soft_targets(labels: Sequence[Label]) -> np.ndarray:
    """(N, 6) float32 soft targets."""
    return TARGET_SOFT[np.array([lab.target_index() for lab in labels], dtype=np.int64)].astype(np.float32)


def target_to_label(target: int) -> Label | None:
    return None if target == INVALID else TARGETS[int(target)]


def mask_names(mask: int) -> list[str]:
    return [e for i, e in enumerate(EMOTIONS) if mask >> i & 1]
