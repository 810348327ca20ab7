"""AVE, Audio-Visual Event dataset (Tian et al., ECCV 2018): when an event is both heard and seen in 10 s videos.

Format: the AVE_Dataset release linked from github.com/YapengTian/AVE-ECCV18 (the repo keeps a copy of
`data/Annotations.txt`). `Annotations.txt` holds every event, `trainSet.txt`, `valSet.txt` and
`testSet.txt` the paper's split, all in one `&`-separated format with the header
`Category&VideoID&Quality&StartTime&EndTime` (the repo's copy has no header; both are read):

    Church bell&MH3m4AwEcRY&good&6&8

Times are whole seconds within the 10 s video; Quality is "good" on every row. A video can hold two
events of different categories (4143 rows, 4097 videos), so `uid` is `<VideoID>_<category>`.

--annotations is the AVE_Dataset directory: --split reads `<split>Set.txt`, no --split reads
Annotations.txt, so `ref` names the file actually read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import open_text

NAME = "ave"
TASKS = ("igatl",)
INPUTS = ("AVE_Dataset/ with Annotations.txt, trainSet.txt, valSet.txt, testSet.txt, linked from "
          "github.com/YapengTian/AVE-ECCV18")
MEDIA = ("AVE/<VideoID>.mp4 as released (media root = the AVE_Dataset directory); frames/<uid>.jpg "
         "(the middle of the event) and audio/<VideoID>.wav are extracted from it")

SPLIT_FILES = {None: "Annotations.txt", "train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
HEADER = "Category&VideoID&Quality&StartTime&EndTime"
FIELDS = HEADER.split("&")
DURATION = 10.0


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per event row (its category heard and seen over one segment) or a Reject."""
    if split not in SPLIT_FILES:
        raise ValueError(f"AVE splits are train, val, test; got --split {split!r}")
    path = Path(annotations) / SPLIT_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the AVE_Dataset directory, which holds "
                                f"{', '.join(SPLIT_FILES.values())}")
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            if line.strip() and not (number == 1 and line.strip() == HEADER):
                yield Row(f"{path.name}:{number}", _parse(line, split))


def _parse(line: str, split: str | None) -> Record | Reject:
    fields = [value.strip() for value in line.rstrip("\n").split("&")]
    if len(fields) > len(FIELDS):
        return Reject("bad_value", f"{len(fields)} &-separated fields, expected {HEADER}: {line.strip()!r}")
    named = dict(zip(FIELDS, fields))
    missing = [name for name in FIELDS if not named.get(name)]
    if missing:
        return Reject("missing_field", f"{missing[0]} is missing or empty in {line.strip()!r}")
    category, video_id, _quality, start, end = fields
    try:
        start_s, end_s = float(start), float(end)
    except ValueError:
        return Reject("bad_value", f"StartTime/EndTime={start!r}/{end!r} are not numbers")
    if not 0 <= start_s < end_s <= DURATION:
        return Reject("segment_past_end", f"[{start}, {end}] is not a segment within the {DURATION:g} s video")
    label = category.lower()
    uid = f"{video_id}_{re.sub(r'[^a-z0-9]+', '_', label).strip('_')}"
    return Record(uid=uid, clip_id=video_id, label=label, segments=[[start_s, end_s]], duration=DURATION,
                  video=f"AVE/{video_id}.mp4", image=f"frames/{uid}.jpg", audio=f"audio/{video_id}.wav",
                  frame_time=(start_s + end_s) / 2, extra={"split": split})
