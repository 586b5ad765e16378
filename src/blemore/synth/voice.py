"""Synthetic non-verbal vocalisations (laughs, sobs, growls, gasps, "ugh"s, hums) in numpy.

A vocalisation is a sequence of *bursts* (syllable-like voiced events). Each burst is made by
additive synthesis: the harmonics of a time-varying fundamental frequency (with jitter,
shimmer, vibrato and subharmonic roughness), shaped by a spectral tilt and a formant envelope
(the vocal tract), plus aspiration noise filtered by the same envelope (breathiness), under an
attack-decay amplitude envelope. Every emotion has its own prosodic and spectral parameters
(:data:`EMOTION_VOICE`: pitch level and range, contour, loudness, burst tempo and length,
voice quality, tilt, vowel formants), chosen after the acoustic profiles reported for
emotional vocalisations (e.g. high, fast, breathy laughter; low, loud, rough anger; high,
tense fear; soft, falling, tremulous sadness; mid, nasal, short disgust).

A blend alternates the two emotions in time in proportion to their saliences (a 70/30 clip
spends 70 % of its voiced time in bursts of the first emotion), and each burst's parameters
are also pulled a little towards the other emotion's. Actors differ in pitch, vocal-tract
length, loudness, tempo, voice quality and expressivity (:class:`VoiceIdentity`).

All parameters are plain numbers; :func:`synthesize` is deterministic given its ``rng``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from blemore.synth import SynthError

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class VoiceParams:
    """One emotion's vocal profile (relative to the actor's voice).

    ``pitch``: semitones above the actor's base pitch; ``pitch_range``: semitones of the
    within-burst excursion; ``contour``: -1 falling .. +1 rising within a burst;
    ``loudness``: dB; ``rate``: bursts per second; ``burst``: seconds per burst;
    ``jitter`` / ``shimmer``: relative cycle-to-cycle perturbation of period / amplitude;
    ``breath``: aspiration noise relative to the harmonics; ``tilt``: dB per octave of the
    harmonic spectrum; ``vibrato``: semitones of a ~6 Hz tremor; ``rough``: subharmonic
    amplitude (0..1); ``formants``: F1, F2, F3 in Hz (for a reference vocal tract).
    """

    pitch: float
    pitch_range: float
    contour: float
    loudness: float
    rate: float
    burst: float
    jitter: float
    shimmer: float
    breath: float
    tilt: float
    vibrato: float
    rough: float
    formants: tuple[float, float, float]

    def mix(self, other: "VoiceParams", w: float) -> "VoiceParams":
        """``(1 - w) * self + w * other``, field by field."""
        vals = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, tuple):
                vals[f.name] = tuple(float(x + w * (y - x)) for x, y in zip(a, b))
            else:
                vals[f.name] = float(a + w * (b - a))
        return VoiceParams(**vals)


EMOTION_VOICE: dict[str, VoiceParams] = {
    # growl / groan: low, loud, rough, tense (flat tilt), open central vowel
    "ang": VoiceParams(pitch=-3.0, pitch_range=2.0, contour=-0.4, loudness=6.0, rate=1.6, burst=0.42,
                       jitter=0.030, shimmer=0.14, breath=0.15, tilt=-5.0, vibrato=0.0, rough=0.55,
                       formants=(650.0, 1150.0, 2500.0)),
    # "ugh" / "eww": mid-low, short, nasal-fronted, falling
    "disg": VoiceParams(pitch=-1.0, pitch_range=3.5, contour=-0.8, loudness=1.0, rate=1.9, burst=0.28,
                        jitter=0.020, shimmer=0.08, breath=0.35, tilt=-11.0, vibrato=0.0, rough=0.2,
                        formants=(520.0, 1850.0, 2450.0)),
    # gasp / scream / whimper: high, rising, breathy, tremulous, fronted vowel
    "fea": VoiceParams(pitch=9.0, pitch_range=5.0, contour=0.7, loudness=3.0, rate=2.6, burst=0.24,
                       jitter=0.015, shimmer=0.06, breath=0.55, tilt=-8.0, vibrato=1.2, rough=0.0,
                       formants=(420.0, 2300.0, 3000.0)),
    # laughter: high, fast "ha-ha", breathy onsets, open vowel, falling across the burst
    "hap": VoiceParams(pitch=5.0, pitch_range=4.0, contour=-0.3, loudness=3.5, rate=5.0, burst=0.11,
                       jitter=0.010, shimmer=0.05, breath=0.40, tilt=-9.0, vibrato=0.0, rough=0.0,
                       formants=(820.0, 1300.0, 2600.0)),
    # sob / sigh: soft, slow, long, falling, tremulous, back rounded vowel, steep tilt
    "sad": VoiceParams(pitch=2.0, pitch_range=3.0, contour=-0.9, loudness=-6.0, rate=1.1, burst=0.55,
                       jitter=0.025, shimmer=0.09, breath=0.60, tilt=-15.0, vibrato=0.8, rough=0.0,
                       formants=(380.0, 900.0, 2400.0)),
    # hum "mm": soft, flat, steady, nasal murmur
    "neu": VoiceParams(pitch=0.0, pitch_range=0.8, contour=0.0, loudness=-8.0, rate=0.8, burst=0.60,
                       jitter=0.006, shimmer=0.03, breath=0.10, tilt=-14.0, vibrato=0.0, rough=0.0,
                       formants=(260.0, 1000.0, 2250.0)),
}
NEUTRAL_VOICE = EMOTION_VOICE["neu"]


@dataclass(frozen=True)
class VoiceIdentity:
    """An actor's voice: ``f0`` (Hz, base pitch), ``tract`` (formant scale: shorter tracts have
    higher formants), ``gain`` (dB), ``tempo`` (burst-rate multiplier), ``breath`` / ``jitter``
    (added voice quality), ``expressivity`` (multiplier of the emotions' deviations from the
    neutral profile), ``noise_db`` (background noise level, dB relative to full scale)."""

    f0: float
    tract: float
    gain: float
    tempo: float
    breath: float
    jitter: float
    expressivity: float
    noise_db: float


def draw_voice(rng: np.random.Generator, gender: str, variation: float, noise: float) -> VoiceIdentity:
    """A random actor voice of ``gender`` ("f" or "m"); ``variation`` (0..1) scales how much
    actors differ, ``noise`` (0..1) the background noise."""
    v = float(variation)
    base = 210.0 if gender == "f" else 115.0
    return VoiceIdentity(
        f0=float(base * 2 ** (rng.normal(0, 0.5 + 2.5 * v) / 12)),
        tract=float(np.exp(rng.normal(0, 0.02 + 0.05 * v)) * (1.1 if gender == "f" else 1.0)),
        gain=float(rng.normal(0, 1.0 + 3.0 * v)),
        tempo=float(np.exp(rng.normal(0, 0.05 + 0.15 * v))),
        breath=float(abs(rng.normal(0, 0.03 + 0.12 * v))),
        jitter=float(abs(rng.normal(0, 0.002 + 0.008 * v))),
        expressivity=float(np.exp(rng.normal(0, 0.08 + 0.25 * v))),
        noise_db=float(-62 + 34 * noise + rng.normal(0, 2)),
    )


def _actor_params(p: VoiceParams, ident: VoiceIdentity) -> VoiceParams:
    """An emotion profile as this actor performs it (expressivity scales the deviations)."""
    n = NEUTRAL_VOICE
    e = ident.expressivity
    return replace(
        p,
        pitch=n.pitch + e * (p.pitch - n.pitch),
        pitch_range=max(0.2, n.pitch_range + e * (p.pitch_range - n.pitch_range)),
        loudness=n.loudness + e * (p.loudness - n.loudness) + ident.gain,
        rate=p.rate * ident.tempo,
        jitter=p.jitter + ident.jitter,
        breath=p.breath + ident.breath,
        formants=tuple(f * ident.tract for f in p.formants),  # type: ignore[arg-type]
    )


def perturb(p: VoiceParams, rng: np.random.Generator, amount: float) -> VoiceParams:
    """Clip-to-clip variation of a profile; ``amount`` 0..1."""
    a = float(amount)
    return replace(
        p,
        pitch=p.pitch + rng.normal(0, 0.3 + 1.7 * a),
        pitch_range=max(0.2, p.pitch_range * np.exp(rng.normal(0, 0.05 + 0.25 * a))),
        loudness=p.loudness + rng.normal(0, 0.5 + 2.5 * a),
        rate=p.rate * np.exp(rng.normal(0, 0.05 + 0.2 * a)),
        burst=p.burst * np.exp(rng.normal(0, 0.05 + 0.2 * a)),
        breath=max(0.0, p.breath * np.exp(rng.normal(0, 0.05 + 0.3 * a))),
        tilt=p.tilt + rng.normal(0, 0.3 + 2.0 * a),
        formants=tuple(f * np.exp(rng.normal(0, 0.01 + 0.06 * a)) for f in p.formants),  # type: ignore[arg-type]
    )


# -- synthesis ------------------------------------------------------------------------------------
_BANDWIDTHS = (90.0, 110.0, 160.0)


def _formant_gain(freq: np.ndarray, formants: tuple[float, ...]) -> np.ndarray:
    """Magnitude of a cascade of second-order resonators at ``freq`` (normalised to 1 at 0 Hz)."""
    g = np.ones_like(freq)
    for f, bw in zip(formants, _BANDWIDTHS):
        # |H(f)| of a resonance: f^2 / sqrt((f^2 - x^2)^2 + (bw x)^2), 1 at DC
        g = g * (f * f) / np.sqrt((f * f - freq * freq) ** 2 + (bw * freq) ** 2 + 1e-9)
    return g


def _smooth_noise(rng: np.random.Generator, n: int, rate_hz: float, sr: int) -> np.ndarray:
    """Unit-variance noise with a correlation time of ``1 / rate_hz`` (linear interpolation)."""
    k = max(2, int(np.ceil(n * rate_hz / sr)) + 2)
    knots = rng.normal(0, 1, k)
    return np.interp(np.linspace(0, k - 1.0001, n), np.arange(k), knots)


def burst(p: VoiceParams, f0: float, duration: float, rng: np.random.Generator,
          sr: int = SAMPLE_RATE) -> np.ndarray:
    """One voiced burst of ``duration`` seconds at base pitch ``f0`` (Hz); float32 samples."""
    n = max(8, int(round(duration * sr)))
    t = np.arange(n) / sr
    u = t / max(duration, 1e-6)
    # pitch contour in semitones: level + excursion shaped by the contour sign + vibrato + jitter
    shape = p.contour * (u - 0.5) * 2 + (1 - abs(p.contour)) * np.sin(np.pi * u)
    st = (p.pitch + 0.5 * p.pitch_range * shape + p.vibrato * np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 6.3))
          + 12 * np.log2(1 + p.jitter * _smooth_noise(rng, n, min(f0 * 2 ** (p.pitch / 12), 400.0), sr)))
    f = np.clip(f0 * 2.0 ** (st / 12), 50.0, 1500.0)
    phase = 2 * np.pi * np.cumsum(f) / sr
    nyq = sr / 2
    n_harm = int(min(60, nyq * 0.95 // f.min()))
    k = np.arange(1, n_harm + 1)[:, None]  # (H, 1)
    hf = k * f[None, :]  # (H, N) harmonic frequencies
    amp = (k.astype(np.float64) ** (p.tilt / 6.02)) * _formant_gain(hf, p.formants)
    amp = np.where(hf < nyq * 0.95, amp, 0.0)
    voiced = (amp * np.sin(k * phase[None, :])).sum(0)
    if p.rough > 0:  # subharmonic (period doubling) roughness
        voiced = voiced * (1 + p.rough * 0.5 * np.cos(phase / 2))
    voiced *= 1 + p.shimmer * _smooth_noise(rng, n, 80.0, sr)
    # aspiration: white noise through the same formant envelope (frequency domain)
    spec = np.fft.rfft(rng.normal(0, 1, n))
    fr = np.fft.rfftfreq(n, 1 / sr)
    env_noise = _formant_gain(fr, p.formants) * (np.maximum(fr, 50.0) / 500.0) ** (0.5 * p.tilt / 6.02)
    aspir = np.fft.irfft(spec * env_noise, n)
    rms_v = np.sqrt(np.mean(voiced ** 2)) + 1e-9
    aspir *= (np.sqrt(np.mean(voiced ** 2)) / (np.sqrt(np.mean(aspir ** 2)) + 1e-9))
    x = voiced / rms_v + p.breath * aspir / rms_v
    # envelope: 15 % attack, sustained, 35 % release (raised-cosine edges)
    a, r = 0.15, 0.35
    env = np.ones(n)
    ia, ir = max(1, int(a * n)), max(1, int(r * n))
    env[:ia] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ia) / ia)
    env[n - ir:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(ir) / ir)
    level = 10 ** ((p.loudness - 12.0) / 20)  # 0 dB emotion loudness ~ -12 dBFS RMS
    return (x * env * level).astype(np.float32)


def _segment(p: VoiceParams, f0: float, start: float, stop: float, rng: np.random.Generator,
             out: np.ndarray, sr: int) -> None:
    """Fill [start, stop) seconds of ``out`` with bursts of profile ``p``."""
    t = start + rng.uniform(0, 0.3) / max(p.rate, 0.1)
    period = 1.0 / max(p.rate, 0.1)
    while t < stop - 0.05:
        d = min(p.burst * np.exp(rng.normal(0, 0.1)), stop - t)
        if d < 0.04:
            break
        x = burst(p, f0, d, rng, sr)
        i = int(t * sr)
        j = min(len(out), i + len(x))
        out[i:j] += x[: j - i]
        t += period * np.exp(rng.normal(0, 0.12))


def synthesize(
    emotions: tuple[str, ...],
    saliences: tuple[float, ...],
    ident: VoiceIdentity,
    duration: float,
    rng: np.random.Generator,
    active: tuple[float, float] = (0.1, 0.9),
    intensity: float = 1.0,
    variation: float = 0.3,
    mix: float = 0.25,
    sr: int = SAMPLE_RATE,
) -> np.ndarray:
    """A vocalisation of ``duration`` seconds: float32 samples in [-1, 1] at ``sr``.

    ``emotions`` / ``saliences``: one emotion (salience 100) or two (e.g. 70, 30);
    ``active``: the voiced part as fractions of the clip; ``intensity``: scales the emotion's
    deviation from the neutral profile (0..1+); ``variation``: clip-to-clip parameter noise
    (0..1); ``mix``: how far each burst's parameters move towards the other emotion of a blend.
    """
    if len(emotions) != len(saliences) or len(emotions) not in (1, 2):
        raise SynthError(f"need one or two emotions with as many saliences, got {emotions} / {saliences}")
    for e in emotions:
        if e not in EMOTION_VOICE:
            raise SynthError(f"unknown emotion {e!r}; expected one of {', '.join(EMOTION_VOICE)}")
    n = int(round(duration * sr))
    out = np.zeros(n, np.float64)
    profiles = []
    for e in emotions:
        p = NEUTRAL_VOICE.mix(EMOTION_VOICE[e], float(intensity)) if e != "neu" else NEUTRAL_VOICE
        profiles.append(perturb(_actor_params(p, ident), rng, variation))
    t0, t1 = active[0] * duration, active[1] * duration
    if len(emotions) == 1:
        _segment(profiles[0], ident.f0, t0, t1, rng, out, sr)
    else:
        w = np.asarray(saliences, float) / float(sum(saliences))
        order = [0, 1] if rng.random() < 0.5 else [1, 0]
        t = t0
        for i in order:
            span = (t1 - t0) * w[i]
            p = profiles[i].mix(profiles[1 - i], mix * w[1 - i])
            _segment(p, ident.f0, t, t + span, rng, out, sr)
            t += span
    # background: pink-ish noise at the actor's level
    noise = np.cumsum(rng.normal(0, 1, n))
    noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
    noise = noise / (np.std(noise) + 1e-9) * 10 ** (ident.noise_db / 20)
    y = out + noise
    return np.tanh(y).astype(np.float32)  # soft limit instead of hard clipping
