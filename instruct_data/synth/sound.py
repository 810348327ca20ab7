"""Sound of the synthetic world: one signature per class, events with fades, coloured background noise.

Colour sets the pitch and shape sets the timbre and rhythm, so every class is identifiable from
sound alone. All energy stays below 6 kHz, so 16 kHz audio holds it losslessly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

SAMPLE_RATE = 16_000
MAX_HARMONIC_HZ = 6_000.0
FADE_S = 0.02  # raised-cosine fade in/out on every event: no clicks

# Fundamentals a ratio >= 1.5 apart, and no one is within 10 % of another's low harmonics.
PITCH_HZ = {"red": 330.0, "green": 523.0, "blue": 784.0, "yellow": 1175.0}


@dataclass(frozen=True)
class Signature:
    """How a shape sounds: `timbre` in {"sine", "odd", "saw", "warble"}, `pulse_hz` 0 for continuous."""

    timbre: str
    pulse_hz: float
    verb: str  # how captions say it: "the red square beeps"
    noun: str  # "the faint beeping of an unseen red square"


SIGNATURES = {
    "circle": Signature("sine", 0.0, "hums", "hum"),
    "square": Signature("odd", 4.0, "beeps", "beeping"),
    "triangle": Signature("saw", 2.0, "pulses", "pulsing"),
    "star": Signature("warble", 0.0, "warbles", "warble"),
}

PULSE_DUTY = 0.6  # share of each pulse period at full level
PULSE_FLOOR = 0.2  # amplitude between pulses: a pulsed event never drops to silence mid-segment
WARBLE_HZ = 5.0
WARBLE_DEPTH = 0.04  # frequency deviation as a share of the fundamental

NOISE_COLOURS = ("white", "pink", "brown")
_BROWN_CORNER_HZ = 20.0  # brown noise flattens below this, so it carries no DC drift


def tone(colour: str, shape: str, n: int, phase: float) -> np.ndarray:
    """(n,) float32 steady tone of a class at unit RMS, before rhythm and fades."""
    f0 = PITCH_HZ[colour]
    timbre = SIGNATURES[shape].timbre
    cycles = np.arange(n) * (f0 / SAMPLE_RATE)
    if timbre == "warble":
        # FM: the phase deviation (in cycles) of a ±WARBLE_DEPTH·f0 swing at WARBLE_HZ
        swing = WARBLE_DEPTH * f0 / WARBLE_HZ / (2 * np.pi)
        cycles += swing * np.sin(np.arange(n) * (2 * np.pi * WARBLE_HZ / SAMPLE_RATE))
    # Phase reduced in float64, then sines in float32 (several times faster, error ~1e-7).
    theta = (2 * np.pi * (cycles % 1.0) + phase).astype(np.float32)
    fundamental = np.sin(theta)
    if timbre in ("sine", "warble"):
        wave = fundamental
    else:
        # Odd harmonics (square-ish) or all harmonics (sawtooth-ish) at amplitude 1/k, by the recurrence
        # sin((k+d)θ) = 2cos(dθ)·sin(kθ) − sin((k−d)θ), which costs a multiply-add per harmonic.
        step = 2 if timbre == "odd" else 1
        ks = range(1, int(MAX_HARMONIC_HZ // f0) + 1, step)
        twice_cos = 2 * np.cos(step * theta)
        previous, current = (-fundamental if step == 2 else np.zeros_like(fundamental)), fundamental
        wave = fundamental.copy()
        for k in ks[1:]:
            previous, current = current, twice_cos * current - previous
            wave += current / k
    return wave / np.sqrt(np.mean(wave**2, dtype=np.float64)).astype(np.float32)


def envelope(shape: str, n: int) -> np.ndarray:
    """(n,) float32 gain of one event: the shape's pulse rhythm (from the onset), faded in and out."""
    gain = np.ones(n, dtype=np.float32)
    pulse_hz = SIGNATURES[shape].pulse_hz
    if pulse_hz:
        period = round(SAMPLE_RATE / pulse_hz)
        t = np.arange(period) / SAMPLE_RATE  # one pulse period, from its onset
        on = _ramp(t) * _ramp(PULSE_DUTY / pulse_hz - t)
        gain = np.resize((PULSE_FLOOR + (1 - PULSE_FLOOR) * on).astype(np.float32), n)
    fade = _ramp(np.arange(min(round(FADE_S * SAMPLE_RATE), n // 2)) / SAMPLE_RATE).astype(np.float32)
    gain[:fade.size] *= fade
    gain[n - fade.size:] *= fade[::-1]
    return gain


def _ramp(seconds: np.ndarray) -> np.ndarray:
    """0 → 1 over FADE_S along a raised cosine; 0 for negative times."""
    return np.sin(0.5 * np.pi * np.clip(seconds / FADE_S, 0.0, 1.0)) ** 2


def event(colour: str, shape: str, n: int, rms: float, phase: float) -> np.ndarray:
    """(n,) float32 samples of one event of a class, n samples long, faded in and out.

    `rms` is the level of the steady tone; pulses and fades make the event's own RMS a little lower.
    """
    return np.float32(rms) * tone(colour, shape, n, phase) * envelope(shape, n)


# Paul Kellet's economy pink filter: within ±0.5 dB of 1/f from 10 Hz to near Nyquist.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)
_WARM_UP = 4_000  # samples: ~6 time constants of the slowest pole of either filter


def noise(colour: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 background noise at unit RMS: white, pink (1/f) or brown (1/f² above 20 Hz)."""
    shaped = rng.standard_normal(n + _WARM_UP, dtype=np.float32)
    if colour == "pink":
        shaped = lfilter(_PINK_B, _PINK_A, shaped)
    elif colour == "brown":
        pole = np.exp(-2 * np.pi * _BROWN_CORNER_HZ / SAMPLE_RATE)  # integrator leaking below the corner
        shaped = lfilter([1.0], [1.0, -pole], shaped)
    shaped = shaped[_WARM_UP:]  # drop the filters' start-up, where the noise is still quiet
    return (shaped / np.sqrt(np.mean(shaped**2, dtype=np.float64))).astype(np.float32)
