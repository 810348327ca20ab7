"""Training mixtures with per-source weights, and train/val/test splits that keep every clip on one
side (samples of one video never leak between splits)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg}); run `validate` on it") from e


def parse_weighted(spec: str) -> tuple[Path, float]:
    """"file.jsonl:0.5" → (file.jsonl, 0.5); no weight means 1."""
    path, _, weight = spec.rpartition(":") if ":" in spec else (spec, "", "1")
    try:
        value = float(weight)
    except ValueError as e:
        raise ValueError(f"{spec!r}: the weight after ':' must be a number, got {weight!r}") from e
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"{spec!r}: the weight must be a finite number >= 0")
    return Path(path), value


def mix(inputs: list[tuple[Path, float]], seed: int = 0) -> list[dict]:
    """Weight w takes each sample floor(w) times plus a random share frac(w) once more, then all
    samples are shuffled; repeats get "#k" id suffixes so ids stay unique. Deterministic for a seed."""
    rng = random.Random(seed)
    mixed = []
    for path, weight in inputs:
        samples = list(read_jsonl(path))
        whole, share = int(weight), weight - int(weight)
        chosen = [(s, k) for k in range(whole) for s in samples]
        chosen += [(s, whole) for s in rng.sample(samples, round(share * len(samples)))]
        mixed += [dict(s, id=s["id"] if k == 0 else f"{s['id']}#{k}") for s, k in chosen]
    rng.shuffle(mixed)
    return mixed


def clip_key(sample: dict) -> str:
    """What must not cross splits: the clip id, else the media it uses, else the sample itself."""
    return sample.get("clip_id") or sample.get("audio") or sample.get("image") or sample["id"]


def split_of(key: str, fractions: tuple[float, float, float], seed: int) -> str:
    """A stable split for a clip, from a hash: adding clips never moves existing ones."""
    value = int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest(), 16) / 16**40
    train, val, _ = fractions
    return "train" if value < train else "val" if value < train + val else "test"


def split(samples: list[dict], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[dict]]:
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions {fractions} must be >= 0 and sum to 1")
    parts: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for sample in samples:
        parts[split_of(clip_key(sample), fractions, seed)].append(sample)
    return parts
