"""Write and read boxes and time segments as plain text, the way the model sees and says them.

Boxes are `[x1, y1, x2, y2]` (top-left, bottom-right) normalised to [0, 1] with two decimals;
segments are `[start, end]` in seconds with one decimal; several are joined by ", ".
Formatting is strict because it writes training targets; parsing is tolerant because it reads
model output, and repairs what it can with a warning instead of returning garbage.

    >>> format_boxes([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.95]])
    '[0.10, 0.20, 0.30, 0.40], [0.50, 0.50, 0.90, 0.95]'
    >>> parse_boxes("The dog at [0.12,0.30 ,0.56, 1.2].").values
    [[0.12, 0.3, 0.56, 1.0]]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)"
# A bracketed or parenthesised list of numbers and nothing else, so "[a, b, c, d]" never matches.
_GROUP = re.compile(rf"[\[(]\s*({_NUMBER}(?:\s*,\s*{_NUMBER})*)\s*[\])]")
_BOX_ARITY = 4
_SEGMENT_ARITY = 2


@dataclass(frozen=True)
class Parsed:
    """What a parser found: the repaired values, and one warning per repair or skipped group."""

    values: list[list[float]]
    warnings: list[str]


def format_box(box: Sequence[float]) -> str:
    """`[x1, y1, x2, y2]` with two decimals; raises ValueError rather than write an invalid box."""
    values = [float(v) for v in box]
    if (
        len(values) != _BOX_ARITY
        or any(math.isnan(v) or not 0.0 <= v <= 1.0 for v in values)
        or values[0] > values[2]
        or values[1] > values[3]
    ):
        raise ValueError(
            f"invalid box {list(box)}: boxes must be normalised [x1, y1, x2, y2] in [0, 1] "
            "with x1 <= x2 and y1 <= y2; divide pixel coordinates by the image width and height"
        )
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def format_boxes(boxes: Sequence[Sequence[float]]) -> str:
    """Several boxes joined by ", "."""
    return ", ".join(format_box(box) for box in boxes)


def format_segment(segment: Sequence[float]) -> str:
    """`[start, end]` in seconds with one decimal; raises ValueError rather than write an invalid segment."""
    values = [float(v) for v in segment]
    if (
        len(values) != _SEGMENT_ARITY
        or any(math.isnan(v) or math.isinf(v) for v in values)
        or values[0] < 0.0
        or values[1] < values[0]
    ):
        raise ValueError(
            f"invalid segment {list(segment)}: segments must be [start, end] in seconds "
            "with 0 <= start <= end"
        )
    return "[" + ", ".join(f"{v:.1f}" for v in values) + "]"


def format_segments(segments: Sequence[Sequence[float]]) -> str:
    """Several segments joined by ", "."""
    return ", ".join(format_segment(segment) for segment in segments)


def _groups(text: str, arity: int, other_arity: int, kind: str, warnings: list[str]) -> list[tuple[str, list[float]]]:
    """Number groups of `arity`; the other kind's arity and lone numbers like "(2)" are skipped
    silently since they are clearly not this kind, any other count is skipped with a warning."""
    found = []
    for match in _GROUP.finditer(text):
        numbers = [float(n) for n in re.findall(_NUMBER, match.group(1))]
        if len(numbers) == arity:
            found.append((match.group(0), numbers))
        elif len(numbers) not in (1, other_arity):
            warnings.append(f"skipped {match.group(0)}: a {kind} has {arity} numbers, not {len(numbers)}")
    return found


def _clamp(raw: str, name: str, value: float, low: float, high: float, warnings: list[str]) -> float:
    clamped = min(max(value, low), high)
    if clamped != value:
        warnings.append(f"{raw}: clamped {name}={value:g} to {clamped:g}")
    return clamped


def parse_boxes(text: str) -> Parsed:
    """Every `[x1, y1, x2, y2]` or `(x1, y1, x2, y2)` in `text`, clamped to [0, 1] with corners
    put in order; boxes with zero width or height after that are dropped. Two-number groups
    (segments) are ignored silently; groups of 3 or 5+ numbers are ignored with a warning."""
    warnings: list[str] = []
    boxes = []
    for raw, numbers in _groups(text, _BOX_ARITY, _SEGMENT_ARITY, "box", warnings):
        x1, y1, x2, y2 = (
            _clamp(raw, name, v, 0.0, 1.0, warnings) for name, v in zip(("x1", "y1", "x2", "y2"), numbers)
        )
        if x1 > x2:
            x1, x2 = x2, x1
            warnings.append(f"{raw}: swapped x1 and x2 (x1 > x2)")
        if y1 > y2:
            y1, y2 = y2, y1
            warnings.append(f"{raw}: swapped y1 and y2 (y1 > y2)")
        if x1 == x2 or y1 == y2:
            warnings.append(f"{raw}: dropped, zero width or height")
            continue
        boxes.append([x1, y1, x2, y2])
    return Parsed(boxes, warnings)


def parse_segments(text: str, duration: float | None = None) -> Parsed:
    """Every `[start, end]` or `(start, end)` in `text`, clamped to [0, duration] (upper bound only
    when `duration` is given) with start <= end; zero-length segments are dropped. Four-number
    groups (boxes) are ignored silently; groups of 3 or 5+ numbers are ignored with a warning."""
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be a positive number of seconds or None, got {duration}")
    high = math.inf if duration is None else duration
    warnings: list[str] = []
    segments = []
    for raw, numbers in _groups(text, _SEGMENT_ARITY, _BOX_ARITY, "segment", warnings):
        start, end = (_clamp(raw, name, v, 0.0, high, warnings) for name, v in zip(("start", "end"), numbers))
        if start > end:
            start, end = end, start
            warnings.append(f"{raw}: swapped start and end (start > end)")
        if start == end:
            warnings.append(f"{raw}: dropped, zero length")
            continue
        segments.append([start, end])
    return Parsed(segments, warnings)


_YES, _NO = ("yes", "true", "correct"), ("no", "false", "incorrect")


def parse_verdict(text: str) -> bool | None:
    """A fact check's verdict: the first word when it is yes/no (true/false), else the last such word —
    answers may state the facts first and judge last; "not true" / "isn't correct" is the opposite
    verdict. None when the text holds no verdict."""
    words = re.findall(r"[a-z]+n't|[a-z]+", text.lower().replace("\u2019", "'"))
    if words and words[0] in _YES + _NO:
        return words[0] in _YES
    last = next((i for i in reversed(range(len(words))) if words[i] in _YES + _NO), None)
    if last is None:
        return None
    negated = last > 0 and (words[last - 1] == "not" or words[last - 1].endswith("n't"))
    return (words[last] in _YES) != negated


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes (0 for disjoint or degenerate boxes)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def segment_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [start, end] segments (0 for disjoint or empty ones)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def merge_segments(segments: Sequence[Sequence[float]]) -> list[list[float]]:
    """Segments sorted, with overlapping or touching ones joined, so each instant is listed once:
    [[4, 6], [0, 2], [1, 3]] -> [[0, 3], [4, 6]]."""
    merged: list[list[float]] = []
    for start, end in sorted(segments):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged
