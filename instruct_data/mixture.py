"""Training mixtures with per-source weights, and train/val/test splits that keep every clip on one
side (samples of one video never leak between splits)."""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from instruct_data.sources.files import media_path_problem


def read_jsonl(path: Path, problems: Callable[[dict], list[str]] | None = None) -> Iterator[dict]:
    """The JSON object on each line. A line that is not one, or that `problems` (a check of the fields
    the caller reads) finds fault with, is a ValueError naming file:line and the field, not a KeyError
    halfway through the file."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg}); run `validate` on it") from e
            if not isinstance(sample, dict):
                raise ValueError(f"{path}:{number}: a line must hold one JSON object, not a "
                                 f"{type(sample).__name__}; run `validate` on it")
            if problems and (found := problems(sample)):
                raise ValueError(f"{path}:{number}: {found[0]}; run `validate` on it")
            yield sample


def id_problems(sample: dict) -> list[str]:
    """What mix and split read of every sample: its id."""
    return [] if isinstance(sample.get("id"), str) else ["id: missing or not a str"]  # as `validate` says it


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


def parse_roots(specs: list[str], files: list[Path], media_root: Path | None) -> dict[Path, str]:
    """`--root FILE=ROOT` options → each input file's media root as a folder of `media_root`, e.g.
    {data/vggss.jsonl: "vggsound"} for ROOT data/vggsound under data. Either every input has a root
    and there is a `media_root`, or neither: a mixture must be servable by one root."""
    if not specs and media_root is None:
        return {}
    if media_root is None:
        raise ValueError("--root needs --media-root: the folder that holds every input's media root")
    roots = {}
    for spec in specs:
        file, equals, root = spec.partition("=")
        if not (equals and file and root):
            raise ValueError(f"--root {spec!r}: expected FILE=ROOT, e.g. data/vggss.jsonl=data/vggsound")
        if Path(file) not in files:
            raise ValueError(f"--root {spec!r}: {file} is not one of the inputs ({', '.join(map(str, files))})")
        try:
            roots[Path(file)] = Path(root).resolve().relative_to(media_root.resolve()).as_posix()
        except ValueError:
            raise ValueError(f"--root {spec!r}: {root} is not inside --media-root {media_root}; every input's "
                             "media root must lie inside it") from None
    if unrooted := [str(file) for file in files if file not in roots]:
        raise ValueError(f"--media-root needs the media root of every input: add --root FILE=ROOT for "
                         f"{', '.join(dict.fromkeys(unrooted))}")
    return roots


def rebase(sample: dict, folder: str, where: str) -> dict:
    """The sample with its media paths moved from its own root to the common one, `folder` being where
    its root lies in the common one. A path that leaves its root is a ValueError naming `where`."""
    moved = dict(sample)
    for key in ("image", "audio"):
        value = sample.get(key)
        if problem := media_path_problem(value):
            raise ValueError(f"{where}: {key}: {problem}")
        if value:
            moved[key] = posixpath.normpath(posixpath.join(folder, value))
    return moved


def mix(inputs: list[tuple[Path, float]], seed: int = 0, roots: dict[Path, str] | None = None) -> list[dict]:
    """Weight w takes each sample floor(w) times plus a random share frac(w) once more, then all
    samples are shuffled. An id met again (a weight above 1, a file given twice, two files sharing a
    sample) gets the suffix "#k", k counting its repeats, so ids stay unique. With `roots` (see
    `parse_roots`) media paths are rebased onto the common root. Deterministic for a seed."""
    rng = random.Random(seed)
    mixed, repeats, taken = [], Counter(), set()
    for path, weight in inputs:
        samples = list(read_jsonl(path, id_problems))
        if roots:
            samples = [rebase(s, roots[path], f"{path}:{number}") for number, s in enumerate(samples, 1)]
        whole, share = int(weight), weight - int(weight)
        chosen = [s for _ in range(whole) for s in samples]
        chosen += rng.sample(samples, round(share * len(samples)))
        for sample in chosen:
            k = repeats[sample["id"]]
            while (unique := sample["id"] + (f"#{k}" if k else "")) in taken:  # an input id may end in "#k" itself
                k += 1
            repeats[sample["id"]] = k + 1
            taken.add(unique)
            mixed.append(dict(sample, id=unique))
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
