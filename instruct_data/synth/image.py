"""Pictures of the synthetic world: muted textured backgrounds and saturated flat shapes drawn with PIL.

Backgrounds are mixes of two greyish colours (channel spread <= BACKGROUND_SPREAD) and shapes are
saturated (channel spread >= FILL_MIN_SPREAD), so a shape pixel can never equal a background pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 224
BACKGROUNDS = ("gradient", "stripes", "checkerboard", "noise", "rings")
BACKGROUND_SPREAD = 50  # max - min over RGB of any background pixel
FILL_MIN_SPREAD = 100  # max - min over RGB of any shape pixel (RGB ± FILL_JITTER keeps it above this)

RGB = {"red": (210, 45, 45), "green": (45, 175, 65), "blue": (50, 90, 215), "yellow": (225, 200, 40)}
FILL_JITTER = 15


@dataclass(frozen=True)
class Background:
    """Everything `render_background` needs: a kind, its two colours and its parameters."""

    kind: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    angle: float  # radians: direction of the gradient / stripes / checkerboard grid
    period: float  # pixels: stripe period, checker cell, ring spacing, noise blob size
    centre: tuple[float, float]  # rings' centre, pixels
    soft: bool  # stripes: sinusoidal instead of hard-edged
    texture_seed: int  # noise texture


def sample_background(rng: np.random.Generator) -> Background:
    """A random muted background."""
    colours = []
    for _ in range(2):
        grey = rng.integers(50, 201)
        tint = rng.integers(-BACKGROUND_SPREAD // 2 + 1, BACKGROUND_SPREAD // 2, size=3)  # +1: room for rounding
        colours.append(tuple(int(c) for c in np.clip(grey + tint, 0, 255)))
    return Background(
        kind=str(rng.choice(BACKGROUNDS)),
        colours=(colours[0], colours[1]),
        angle=float(rng.uniform(0, np.pi)),
        period=float(rng.uniform(10, 40)),
        centre=(float(rng.uniform(0, SIZE)), float(rng.uniform(0, SIZE))),
        soft=bool(rng.random() < 0.5),
        texture_seed=int(rng.integers(2**31)),
    )


def render_background(bg: Background) -> np.ndarray:
    """(SIZE, SIZE, 3) uint8 background."""
    x = np.arange(SIZE, dtype=np.float32)[None, :]  # (1, W) and (H, 1): broadcast to (H, W)
    y = np.arange(SIZE, dtype=np.float32)[:, None]
    cos, sin = np.float32(np.cos(bg.angle)), np.float32(np.sin(bg.angle))
    u = x * cos + y * sin  # (H, W) coordinates along / across the angle
    v = y * cos - x * sin
    grain = np.float32(0)
    if bg.kind == "gradient":
        mix = (u - u.min()) / (u.max() - u.min())
    elif bg.kind == "stripes":
        wave = np.sin(u * np.float32(2 * np.pi / bg.period))
        mix = 0.5 + 0.5 * wave if bg.soft else (wave > 0).astype(np.float32)
    elif bg.kind == "checkerboard":
        mix = ((np.floor(u / bg.period) + np.floor(v / bg.period)) % 2).astype(np.float32)
    elif bg.kind == "rings":
        radius = np.hypot(x - np.float32(bg.centre[0]), y - np.float32(bg.centre[1]))
        mix = 0.5 + 0.5 * np.sin(radius * np.float32(2 * np.pi / bg.period))
    elif bg.kind == "noise":
        rng = np.random.default_rng(bg.texture_seed)
        cells = max(2, round(SIZE / bg.period))
        coarse = Image.fromarray(rng.random((cells, cells), dtype=np.float32), mode="F")
        mix = np.asarray(coarse.resize((SIZE, SIZE), Image.BICUBIC)).clip(0, 1)
        grain = rng.normal(0, 4, size=(SIZE, SIZE)).astype(np.float32)[..., None]
    else:
        raise ValueError(f"unknown background kind {bg.kind!r}; use one of {BACKGROUNDS}")
    c1, c2 = np.array(bg.colours, dtype=np.float32)
    # Adding the same grain to every channel keeps the channel spread (the background stays grey).
    pixels = c1 + mix[..., None] * (c2 - c1) + grain  # (H, W, 3)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def shape_mask(shape: str, size: float, angle: float) -> np.ndarray:
    """(h, w) bool mask of a shape of nominal `size` px rotated by `angle` radians, cropped tight."""
    canvas = int(np.ceil(size)) + 4
    c = canvas / 2
    r = size / 2
    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([c - r, c - r, c + r, c + r], fill=255)
    else:
        draw.polygon(_polygon(shape, c, r, angle), fill=255)
    x1, y1, x2, y2 = mask.getbbox()
    return np.asarray(mask, dtype=np.uint8)[y1:y2, x1:x2] > 0


def _polygon(shape: str, c: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        corners, radii = 4, [r]
        angle += np.pi / 4  # corners on the diagonals: angle 0 is an upright square
    elif shape == "triangle":
        corners, radii = 3, [r]
    elif shape == "star":
        corners, radii = 10, [r, r * 0.45]  # 5 points, alternating outer and inner radius
    else:
        raise ValueError(f"unknown shape {shape!r}; use circle, square, triangle or star")
    thetas = angle + 2 * np.pi * np.arange(corners) / corners
    return [(c + radii[k % len(radii)] * np.cos(t), c + radii[k % len(radii)] * np.sin(t))
            for k, t in enumerate(thetas)]


def fill_colour(colour: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """The colour's RGB with a small random shade."""
    return tuple(int(c) for c in np.array(RGB[colour]) + rng.integers(-FILL_JITTER, FILL_JITTER + 1, size=3))


def render(bg: Background, shapes: list[tuple[np.ndarray, tuple[int, int], tuple[int, int, int]]]) -> Image.Image:
    """The scene picture: `shapes` are (mask, (x, y) top-left, rgb) painted in order on the background."""
    pixels = render_background(bg)
    for mask, (x, y), rgb in shapes:
        h, w = mask.shape
        pixels[y:y + h, x:x + w][mask] = rgb
    return Image.fromarray(pixels)
