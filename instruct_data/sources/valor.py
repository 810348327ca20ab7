"""VALOR-32K (Chen et al., 2023): audio-visual captions of 10 s AudioSet clips.

Published format: `VALOR-32K-annotations.zip` from the project page linked in TXH-mercury/VALOR's
README (https://casia-iva-group.github.io/projects/VALOR/download.html), folder
`valor-32k-annotations/` with `desc_train.json`, `desc_val.json` and `desc_test.json`. Each file is
a JSON list of rows like

    {"video_id": "CEfOX4fYlsY_20.000_30.000",
     "desc": "In one room, a yellow bird leaped over the fence. The sound of his mouth ringing."}

`desc` is one caption; a list of captions (as in VALOR's own txt_mapper files) is read too. Other keys
(VAST's re-release adds `subtitle`) are ignored. `video_id` is `<youtube_id>_<start>_<end>` in
seconds of the YouTube video: clip_id is the YouTube id and duration end - start; a video_id that does
not follow that pattern is its own clip_id, with no duration. uid is the video_id.

Split: the file name (`desc_<split>.json`). `--annotations` is one of those files or the folder holding them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from instruct_data.sources.base import Record, Reject, Row

NAME = "valor"
TASKS = ("avc",)
INPUTS = ("desc_train.json, desc_val.json, desc_test.json (or the folder holding them) from "
          "VALOR-32K-annotations.zip, https://casia-iva-group.github.io/projects/VALOR/download.html")
MEDIA = ("videos/<video_id>.mp4: the 10 s clips cut from YouTube; the converter extracts "
         "frames/<video_id>.jpg (middle frame) and audio/<video_id>.wav from them")

SPLITS = ("train", "val", "test")
CLIP = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)$")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """One Row per caption row of the split's file(s), in file order."""
    seen: dict[str, str] = {}
    for path in _files(Path(annotations), split):
        for i, row in enumerate(_load(path)):
            ref, value = f"{path.name}[{i}]", _record(row)
            if isinstance(value, Record):
                if value.uid in seen:
                    value = Reject("duplicate_id", f"video_id {value.uid!r} already used at {seen[value.uid]}")
                else:
                    seen[value.uid] = ref
            yield Row(ref, value)


def _record(row: object) -> Record | Reject:
    if not isinstance(row, dict):
        return Reject("bad_value", f"row is a {type(row).__name__}, not an object")
    missing = [f for f in ("video_id", "desc") if f not in row]
    if missing:
        return Reject("missing_field", f"no {', '.join(missing)}")
    desc = row["desc"]
    captions = [desc] if isinstance(desc, str) else desc
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        return Reject("bad_value", f"desc={desc!r} is neither a caption nor a list of captions")
    captions = [c.strip() for c in captions]
    if not captions or not all(captions):
        return Reject("empty_answer", f"desc={desc!r}")
    video_id = str(row["video_id"])
    clip_id, duration = video_id, None
    if match := CLIP.match(video_id):
        clip_id, duration = match["youtube_id"], float(match["end"]) - float(match["start"])
        if duration <= 0:
            return Reject("bad_value", f"video_id={video_id!r} ends at {match['end']} s, "
                                       f"not after its start {match['start']} s")
    return Record(uid=video_id, clip_id=clip_id, video=f"videos/{video_id}.mp4", image=f"frames/{video_id}.jpg",
                  audio=f"audio/{video_id}.wav", captions=captions, duration=duration)


def _files(annotations: Path, split: str | None) -> list[Path]:
    """The file given (if its split matches), or the split's file (every split's) in the folder given."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    if annotations.is_file():
        named = next((s for s in SPLITS if annotations.name == f"desc_{s}.json"), None)
        if split is not None and named is None:
            raise ValueError(f"{annotations}: its name does not say its split; name it desc_<split>.json "
                             "or convert without a split")
        return [annotations] if split in (None, named) else []
    files = [annotations / f"desc_{s}.json" for s in ([split] if split else SPLITS)]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FileNotFoundError(f"{annotations}: no desc_{split or '<split>'}.json there; pass the "
                                "valor-32k-annotations folder of VALOR-32K-annotations.zip or one of its files")
    return files


def _load(path: Path) -> list:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of caption rows, got a {type(rows).__name__}")
    return rows
