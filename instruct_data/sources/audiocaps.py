"""AudioCaps (Kim et al., NAACL 2019): human captions for 10 s AudioSet clips.

Format: github.com/cdjkim/audiocaps, `dataset/train.csv`, `val.csv`, `test.csv` (AudioCaps 2.0 in
`dataset2.0/`, same columns). Header `audiocap_id,youtube_id,start_time,caption`; one caption per row:

    97151,vfY_TJq7n_U,130,"Rustling occurs, ducks quack and water splashes, followed by ..."

val/test hold five captions per clip in separate, non-adjacent rows; rows with the same
(youtube_id, start_time) become one Record carrying every caption, and its `ref` lists all their lines.

--annotations is one of those CSVs (its name, train/val/test, is its split) or the directory holding
them: --split picks one file (it must be there), no --split reads those of the three that are there.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import open_text, surplus_fields

NAME = "audiocaps"
TASKS = ("caption_audio",)
INPUTS = ("dataset/train.csv, val.csv, test.csv from github.com/cdjkim/audiocaps "
          "(one file, or their directory)")
MEDIA = ("audio/<youtube_id>_<start_time>.wav: the 10 s clip from <start_time> s of the YouTube video "
         "(start_time as written in the CSV, e.g. audio/vfY_TJq7n_U_130.wav)")

SPLITS = ("train", "val", "test")
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per clip (all its captions) and one Reject per unusable row."""
    for path in _files(Path(annotations), split):
        yield from _read_file(path)


def _files(annotations: Path, split: str | None) -> list[Path]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"AudioCaps splits are {', '.join(SPLITS)}; got --split {split!r}")
    if annotations.is_dir():
        names = [f"{s}.csv" for s in ([split] if split else SPLITS)]
        paths = [annotations / name for name in names if (annotations / name).is_file()]
        if not paths:
            raise FileNotFoundError(f"{annotations} holds no {' or '.join(names)}: pass the folder of the "
                                    f"published AudioCaps CSVs")
        return paths
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} not found: pass an AudioCaps CSV or its directory")
    if split is not None and annotations.stem != split:
        raise ValueError(f"{annotations.name} is not the {split} split: pass {split}.csv, its directory, "
                         f"or leave out --split")
    return [annotations]


def _read_file(path: Path) -> Iterator[Row]:
    clips: dict[tuple[str, int], dict] = {}  # (youtube_id, start_time) -> lines, ids, captions
    with open_text(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(missing)}; expected {','.join(COLUMNS)}")
        for row in reader:
            ref = f"{path.name}:{reader.line_num}"
            if reject := surplus_fields(row, reader.fieldnames):
                yield Row(ref, reject)
                continue
            absent = next((c for c in COLUMNS if row[c] is None or (c != "caption" and not row[c].strip())), None)
            if absent:
                state = "missing" if row[absent] is None else "empty"
                yield Row(ref, Reject("missing_field", f"{absent} is {state}"))
                continue
            start = row["start_time"].strip()
            if not re.fullmatch("[0-9]+", start):  # not isdigit(): it takes "²", which int() refuses
                yield Row(ref, Reject("bad_value", f"start_time={start!r} is not whole seconds"))
                continue
            caption = row["caption"].strip()
            if not caption:
                yield Row(ref, Reject("empty_answer", f"caption is empty (audiocap_id {row['audiocap_id']})"))
                continue
            clip = clips.setdefault((row["youtube_id"].strip(), int(start)),
                                    {"lines": [], "ids": [], "captions": []})
            clip["lines"].append(str(reader.line_num))
            clip["ids"].append(row["audiocap_id"].strip())
            clip["captions"].append(caption)
    split = path.stem if path.stem in SPLITS else None
    for (youtube_id, start), clip in clips.items():
        uid = f"{youtube_id}_{start}"
        yield Row(f"{path.name}:{','.join(clip['lines'])}",
                  Record(uid=uid, clip_id=youtube_id, audio=f"audio/{uid}.wav", captions=clip["captions"],
                         extra={"start_time": start, "audiocap_ids": clip["ids"], "split": split}))
