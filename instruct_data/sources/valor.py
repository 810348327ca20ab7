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

import re
from pathlib import Path
from typing import Iterator

from instruct_data.sources.base import Record, Reject, Row, check_fields
from instruct_data.sources.files import json_rows

NAME = "valor"
TASKS = ("avc",)
INPUTS = ("desc_train.json, desc_val.json, desc_test.json (or the folder holding them) from "
          "VALOR-32K-annotations.zip, https://casia-iva-group.github.io/projects/VALOR/download.html")
MEDIA = ("videos/<video_id>.mp4: the 10 s clips cut from YouTube; the converter extracts "
         "frames/<video_id>.jpg (middle frame) and audio/<video_id>.wav from them")

SPLITS = ("train", "val", "test")
FILE_NAME = "desc_{}.json"  # {} is the split
HINT = "pass the valor-32k-annotations folder of VALOR-32K-annotations.zip or one of its files"
CLIP = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)$")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """One Row per caption row of the split's file(s), in file order."""
    for ref, row in json_rows(Path(annotations), split, FILE_NAME, SPLITS, HINT, "caption rows"):
        yield Row(ref, _record(row))


def _record(row: object) -> Record | Reject:
    if reject := check_fields(row, ("video_id", "desc")):
        return reject
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
