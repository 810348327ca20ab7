"""Pictures of grounded answers: boxes drawn on the image, time segments shaded on the audio's
spectrogram — ground truth in green, predictions in red."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from meerkat.media import load_audio, load_image

TRUTH, PREDICTED = (40, 200, 60), (230, 40, 40)


def draw_boxes(image: Any, predicted: list[list[float]] | None = (), truth: list[list[float]] | None = (),
               out: str | Path | None = None) -> Image.Image:
    """The image (path / PIL / array) with normalised boxes drawn on it; saved as PNG when `out` is given.
    A box thinner than a pixel is drawn one pixel wide; None draws no boxes."""
    canvas = load_image(image).copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(min(canvas.size) / 100))
    w, h = canvas.size
    for boxes, colour in ((truth or (), TRUTH), (predicted or (), PREDICTED)):
        for x1, y1, x2, y2 in boxes:
            left, top = min(x1, x2) * w, min(y1, y2) * h
            right, bottom = max(max(x1, x2) * w - 1, left), max(max(y1, y2) * h - 1, top)
            draw.rectangle([left, top, right, bottom], outline=colour, width=width)
    if out is not None:
        canvas.save(out, format="PNG")
    return canvas


def plot_segments(audio: Any, predicted: list[list[float]] | None = (), truth: list[list[float]] | None = (),
                  out: str | Path = "segments.png", sample_rate: int = 16_000) -> Path:
    """The audio's spectrogram with segments (seconds) shaded above (truth) and below (prediction), saved
    as PNG at `out` whatever its suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wave = load_audio(audio, sample_rate)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.specgram(wave + 1e-9 * np.random.default_rng(0).standard_normal(len(wave)), Fs=sample_rate, NFFT=512,
                noverlap=256, cmap="magma")
    top = sample_rate / 2
    for segments, colour, (low, high) in ((truth or (), TRUTH, (0.5, 1.0)), (predicted or (), PREDICTED, (0.0, 0.5))):
        for start, end in segments:
            ax.axvspan(start, end, ymin=low, ymax=high, color=np.array(colour) / 255, alpha=0.35)
    ax.set_xlim(0, len(wave) / sample_rate)
    ax.set_ylim(0, top)
    ax.set_xlabel("seconds")
    ax.set_ylabel("Hz")
    ax.set_title("truth (upper half, green) · prediction (lower half, red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100, format="png")
    plt.close(fig)
    return Path(out)
