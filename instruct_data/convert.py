"""One conversion run: a source's rows → checked records → samples, written atomically, with every
row that was not converted listed in `<out>.rejects.jsonl` and counted in the summary."""

from __future__ import annotations

import json
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
from instruct_data.tasks import Pool, build_samples
from instruct_data.validate import box_problem, segment_problem
from instruct_data.video import ExtractionError, extract_audio, extract_frame


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
        lines = [f"{'source':<18}{self.source}", f"{'rows read':<18}{self.rows}", f"{'records':<18}{self.records}",
                 f"{'rejected':<18}{sum(self.rejected.values())}"]
        lines += [f"  {reason:<16}{n}" for reason, n in sorted(self.rejected.items())]
        lines.append(f"{'samples written':<18}{sum(self.samples.values())}")
        lines += [f"  {task:<16}{n}" for task, n in sorted(self.samples.items())]
        return "\n".join(lines)


def rejects_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".rejects.jsonl")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> int:
    """Write to a temporary file beside `path`, then rename: a crash or Ctrl-C leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    count = 0
    try:
        with os.fdopen(fd, "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def check_record(record: Record) -> Reject | None:
    """Generic checks every source gets: ranges of boxes and segments, non-empty answers."""
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


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) and not Path(relative).is_absolute() else None


def check_media(record: Record, root: Path) -> Reject | None:
    """Media exist inside the root and open; frames and wavs are extracted from a video first."""
    wanted = [(kind, rel) for kind, rel in (("image", record.image), ("audio", record.audio)) if rel]
    for kind, rel in wanted + ([("video", record.video)] if record.video else []):
        if _inside(root, rel) is None:
            return Reject("path_escape", f"{kind}: {rel!r} resolves outside the media root {root}")
    missing = [(kind, rel) for kind, rel in wanted if not (root / rel).is_file()]
    if missing and record.video:
        video = root / record.video
        if not video.is_file():
            return Reject("missing_media", f"video: {video} does not exist")
        try:
            for kind, rel in missing:
                if kind == "image":
                    extract_frame(video, root / rel, record.frame_time)
                else:
                    extract_audio(video, root / rel)
        except ExtractionError as e:
            return Reject("unreadable_media", f"video: {e}")
    for kind, rel in wanted:
        path = root / rel
        if not path.is_file():
            return Reject("missing_media", f"{kind}: {path} does not exist")
        try:
            if kind == "image":
                with Image.open(path) as image:
                    image.verify()  # header and structure, without a full decode
            else:
                sf.info(str(path))
        except Exception as e:  # PIL and libsndfile raise many types; all mean "unreadable"
            return Reject("unreadable_media", f"{kind}: {path}: {e}")
    return None


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
                value = check_record(value) or (check_media(value, Path(media_root)) if media_root else None) or value
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
            rejects.append({"row": ref, "reason": "no_task",
                            "detail": f"the record has none of the fields that {', '.join(source.TASKS)} need"})
            summary.rejected["no_task"] += 1
        for sample in built:
            summary.samples[sample["task"]] += 1
        samples += built
    summary.records = len(records)
    write_jsonl_atomic(out, samples)
    write_jsonl_atomic(rejects_path(out), rejects)
    return summary
