"""Check an instruction JSONL against the sample contract (docs/data.md): schema, media, ranges, ids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import soundfile as sf
from PIL import Image

from instruct_data.sources.base import is_number
from instruct_data.sources.files import media_path_problem
from meerkat.media import MediaError, resolve_media_path
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN

TASKS = {"arig", "igatl", "avfc", "avqa", "avc", "caption_audio", "caption_image", "classify"}
REQUIRED = {"id": str, "source": str, "task": str, "conversations": list, "target": dict}


def box_problem(box) -> str | None:
    if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)):
        return f"{box!r} is not a list of 4 numbers"
    if not (all(0 <= v <= 1 for v in box) and box[0] < box[2] and box[1] < box[3]):
        return f"{box} is not a normalised [x1, y1, x2, y2] with x1 < x2, y1 < y2 in [0, 1]"
    return None


def segment_problem(segment, duration) -> str | None:
    if not (isinstance(segment, list) and len(segment) == 2 and all(is_number(v) for v in segment)):
        return f"{segment!r} is not a list of 2 numbers"
    end = duration if is_number(duration) else math.inf
    if not 0 <= segment[0] < segment[1] <= end:
        return f"{segment} is not inside [0, {end}] with start < end"
    return None


def sample_problems(sample: dict) -> list[str]:
    """Problems in one sample that need no media: 'field: what is wrong'."""
    problems = [f"{key}: missing or not a {kind.__name__}" for key, kind in REQUIRED.items()
                if not isinstance(sample.get(key), kind)]
    if problems:
        return problems
    if sample["task"] not in TASKS:
        problems.append(f"task: {sample['task']!r} is not one of {sorted(TASKS)}")
    turns = sample["conversations"]
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and turn.get("role") == ("user", "assistant")[i % 2]
                and isinstance(turn.get("content"), str) and turn["content"].strip()):
            problems.append(f"conversations[{i}]: must be a non-empty {('user', 'assistant')[i % 2]} turn")
    if not turns or len(turns) % 2:
        problems.append("conversations: must alternate user/assistant and end with an assistant turn")
    text = " ".join(t["content"] for t in turns if isinstance(t, dict) and isinstance(t.get("content"), str))
    for key, token in (("image", IMAGE_TOKEN), ("audio", AUDIO_TOKEN)):
        value = sample.get(key)
        if problem := media_path_problem(value):
            problems.append(f"{key}: {problem}")
        if text.count(token) != (1 if value else 0):
            problems.append(f"{key}: {text.count(token)} {token} placeholder(s) for {'one' if value else 'no'} {key}")
    if not isinstance(sample.get("grounding") or {}, dict):
        problems.append("grounding: must be an object or absent")
    for part in ("target", "grounding"):
        block = sample.get(part) if isinstance(sample.get(part), dict) else {}
        for key, check in (("boxes", box_problem), ("segments", lambda s: segment_problem(s, block.get("duration")))):
            values = block.get(key) or []
            if not isinstance(values, list):
                problems.append(f"{part}.{key}: must be a list, not a {type(values).__name__}")
                continue
            problems += [f"{part}.{key}: {problem}" for value in values if (problem := check(value))]
    return problems


def media_problems(sample: dict, root: Path) -> list[str]:
    problems = []
    for key in ("image", "audio"):
        if not isinstance(sample.get(key), str):
            continue
        try:
            path = resolve_media_path(root, sample[key])
            if key == "image":
                with Image.open(path) as image:
                    image.verify()
            else:
                sf.info(str(path))
        except (MediaError, FileNotFoundError) as e:
            problems.append(f"{key}: {e}")
        except Exception as e:  # PIL and libsndfile raise many types; all mean "unreadable"
            problems.append(f"{key}: cannot read {sample[key]}: {e}")
    return problems


def validate(path: Path, media_root: Path | None) -> list[str]:
    """Every problem in the file as 'file:line: field: problem'; empty when the file is valid."""
    report, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            where = f"{path}:{number}"
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as e:
                report.append(f"{where}: not valid JSON ({e.msg})")
                continue
            if not isinstance(sample, dict):
                report.append(f"{where}: a line must hold one JSON object")
                continue
            problems = sample_problems(sample)
            if media_root is not None and not problems:
                problems += media_problems(sample, media_root)
            if isinstance(sample.get("id"), str):
                if sample["id"] in seen:
                    problems.append(f"id: {sample['id']!r} duplicates line {seen[sample['id']]}")
                seen.setdefault(sample["id"], number)
            report += [f"{where}: {p}" for p in problems]
    return report
