"""One conversion run: a source's rows → checked records → samples, written atomically, with every
row that was not converted listed in `<out>.rejects.jsonl` and counted in the summary."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import soundfile as sf
from PIL import Image
from tqdm import tqdm

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import inside, path_escape
from instruct_data.tasks import Pool, build_samples
from instruct_data.validate import box_problem, segment_problem
from instruct_data.video import ExtractionError, extract_audio, extract_frame

# How far a segment may run past the measured audio: encoders often end a "10 s" clip a frame or two
# early (9.98 s), and whole-second annotations of it still end at 10.
LENGTH_TOLERANCE = 0.1


class ConversionError(RuntimeError):
    """A --strict run met a row it could not convert."""


@dataclass
class Summary:
    source: str
    rows: int = 0
    records: int = 0
    rejected: Counter = field(default_factory=Counter)
    samples: Counter = field(default_factory=Counter)

    def table(self) -> str:
        # Indented names are reasons and tasks; the column is as wide as the longest, so they never run into the counts.
        width = max([16] + [len(name) + 1 for name in [*self.rejected, *self.samples]])
        lines = [f"{label:<{width + 2}}{value}" for label, value in (
            ("source", self.source), ("rows read", self.rows), ("records", self.records),
            ("rejected", sum(self.rejected.values())))]
        lines += [f"  {reason:<{width}}{n}" for reason, n in sorted(self.rejected.items())]
        lines.append(f"{'samples written':<{width + 2}}{sum(self.samples.values())}")
        lines += [f"  {task:<{width}}{n}" for task, n in sorted(self.samples.items())]
        return "\n".join(lines)


def rejects_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".rejects.jsonl")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> int:
    """Write to a temporary file beside `path`, then rename: a crash or Ctrl-C leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    count = 0
    try:
        umask = os.umask(0)  # os has no reader for the umask, only this swap
        os.umask(umask)
        os.chmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the mode `open` would give them
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def check_record(record: Record) -> Reject | None:
    """Generic checks every source gets: media paths that leave any root, ranges of boxes and segments,
    non-empty answers."""
    for kind, rel in (("image", record.image), ("audio", record.audio), ("video", record.video)):
        if rel and (problem := path_escape(rel)):
            return Reject("path_escape", f"{kind}: {problem}")
    for box in record.boxes or []:
        if problem := box_problem(box):
            return Reject("box_outside_image", f"boxes: {problem}")
    for segment in record.segments or []:
        if problem := segment_problem(segment, record.duration):
            return Reject("segment_past_end", f"segments: {problem}")
    if record.question is not None and not (record.answer or "").strip():
        return Reject("empty_answer", f"answer: empty for question {record.question!r}")
    if record.captions is not None and not any(c.strip() for c in record.captions):
        return Reject("empty_answer", "captions: all empty")
    return None


def check_media(record: Record, root: Path) -> Record | Reject:
    """Media exist inside the root and open; frames and wavs are extracted from a video first. The
    audio goes first: its length bounds the segments (and so the frame time, taken within them), and
    the record comes back with `duration` cut to it when the clip is shorter than the source says."""
    wanted = [(kind, rel) for kind, rel in (("audio", record.audio), ("image", record.image)) if rel]
    for kind, rel in wanted + ([("video", record.video)] if record.video else []):
        if not inside(root, rel):
            return Reject("path_escape", f"{kind}: {rel!r} resolves outside the media root {root}")
    video = root / record.video if record.video else None
    if video and not video.is_file() and any(not (root / rel).is_file() for _, rel in wanted):
        return Reject("missing_media", f"video: {video} does not exist")
    for kind, rel in wanted:
        path = root / rel
        if video and not path.is_file():
            try:
                if kind == "image":
                    extract_frame(video, path, record.frame_time)
                else:
                    extract_audio(video, path)
            except ExtractionError as e:
                return Reject("unreadable_media", f"video: {e}")
        if not path.is_file():
            return Reject("missing_media", f"{kind}: {path} does not exist")
        try:
            if kind == "image":
                with Image.open(path) as image:
                    image.verify()  # header and structure, without a full decode
            else:
                length = sf.info(str(path)).duration
        except Exception as e:  # PIL and libsndfile raise many types; all mean "unreadable"
            return Reject("unreadable_media", f"{kind}: {path}: {e}")
        if kind == "audio" and record.segments:
            end = max(segment[1] for segment in record.segments)
            if end > length + LENGTH_TOLERANCE:
                return Reject("segment_past_end", f"segments: {record.segments} end at {end:g} s, but the audio "
                                                  f"{rel} lasts only {length:.2f} s")
            record = dataclasses.replace(record, duration=min(record.duration or math.inf, max(length, end)))
    return record


def convert(source: ModuleType, annotations: Path, out: Path, *, media_root: Path | None = None,
            split: str | None = None, limit: int | None = None, seed: int = 0, strict: bool = False,
            progress: bool = True) -> Summary:
    """Convert one source; writes `out` and its rejects file, returns the counts."""
    summary = Summary(source.NAME)
    records: list[tuple[str, Record]] = []
    rejects: list[dict] = []
    seen: set[str] = set()
    rows: Iterator[Row] = source.read(Path(annotations), split)
    for row in tqdm(rows, desc=f"reading {source.NAME}", unit="row", disable=not progress):
        if limit is not None and summary.rows >= limit:
            break
        summary.rows += 1
        value = row.value
        if isinstance(value, Record):
            if value.uid in seen:
                value = Reject("duplicate_id", f"uid: {value.uid!r} appeared earlier in the input")
            else:
                seen.add(value.uid)
                value = check_record(value) or (check_media(value, Path(media_root)) if media_root else value)
        if isinstance(value, Reject):
            rejects.append({"row": row.ref, "reason": value.reason, "detail": value.detail})
            summary.rejected[value.reason] += 1
            if strict:
                write_jsonl_atomic(rejects_path(out), rejects)
                raise ConversionError(f"{row.ref}: {value.reason}: {value.detail} (--strict stops at the first bad row)")
        else:
            records.append((row.ref, value))
    rng = random.Random(seed)
    pool = Pool([record for _, record in records], rng)
    samples = []
    for ref, record in records:
        built = build_samples(source.NAME, record, source.TASKS, pool, rng)
        if not built:
            detail = f"the record has none of the fields that {', '.join(source.TASKS)} need"
            rejects.append({"row": ref, "reason": "no_task", "detail": detail})
            summary.rejected["no_task"] += 1
            if strict:
                write_jsonl_atomic(rejects_path(out), rejects)
                raise ConversionError(f"{ref}: no_task: {detail} (--strict stops at the first bad row)")
        for sample in built:
            summary.samples[sample["task"]] += 1
        samples += built
    summary.records = len(records)
    write_jsonl_atomic(out, samples)
    write_jsonl_atomic(rejects_path(out), rejects)
    return summary
