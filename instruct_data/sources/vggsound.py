"""VGGSound (Chen et al., ICASSP 2020): 10 s YouTube clips, each labelled with one of 309 sound classes.

Format: `vggsound.csv` from robots.ox.ac.uk/~vgg/data/vggsound/ (mirrored on Hugging Face as
Loie/VGGSound). No header; one clip per row, `youtube_id,start_seconds,label,split`:

    -2Dm0VjW8oM,1,"pigeon, dove cooing",test

The 4th column is the split, train or test (VGGSound publishes no val split). Labels are already plain
words, some holding commas inside quotes; they are kept as published, lowercased.

Clip files: the authors' list of test videos (github.com/hche11/VGGSound, `data/test.csv`) names the
row above `-2Dm0VjW8oM_000001.mp4`, i.e. `<youtube_id>_<start_seconds:06d>.mp4`; we expect those files
under `video/`. One YouTube video can give several clips (different starts), so uid is the file stem and
clip_id the YouTube id, which keeps them in one split.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import open_text

NAME = "vggsound"
TASKS = ("classify", "avfc")
INPUTS = "vggsound.csv (no header: youtube_id,start_seconds,label,split) from robots.ox.ac.uk/~vgg/data/vggsound/"
MEDIA = ("video/<youtube_id>_<start:06d>.mp4, the 10 s clips as released; the converter extracts the middle "
         "frame to frames/<same>.jpg and the sound to audio/<same>.wav")

SPLITS = ("train", "test")
FIELDS = ("youtube_id", "start_seconds", "label", "split")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per clip of `split` (all clips when None), or a Reject naming the bad field."""
    path = Path(annotations)
    if split is not None and split not in SPLITS:
        raise ValueError(f"VGGSound publishes only the {' and '.join(SPLITS)} splits; got --split {split!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the published vggsound.csv")
    with open_text(path, newline="") as f:
        reader = csv.reader(f)
        for fields in reader:
            if not fields:  # a blank line is no row
                continue
            ref = f"{path.name}:{reader.line_num}"
            if len(fields) != len(FIELDS):
                reason = "missing_field" if len(fields) < len(FIELDS) else "bad_value"
                yield Row(ref, Reject(reason, f"row has {len(fields)} fields, expected {','.join(FIELDS)} "
                                              f"(a label with commas must be quoted)"))
                continue
            youtube_id, start, label, row_split = (field.strip() for field in fields)
            if row_split not in SPLITS:
                yield Row(ref, Reject("bad_value", f"split={row_split!r}, expected train or test"))
                continue
            if split is not None and row_split != split:
                continue
            if not youtube_id:
                yield Row(ref, Reject("missing_field", "youtube_id is empty"))
            elif not re.fullmatch("[0-9]+", start):  # not isdigit(): it takes "²", which int() refuses
                yield Row(ref, Reject("bad_value", f"start_seconds={start!r} is not whole seconds"))
            elif not label:
                yield Row(ref, Reject("empty_answer", f"label is empty for {youtube_id}"))
            else:
                uid = f"{youtube_id}_{int(start):06d}"
                yield Row(ref, Record(uid=uid, clip_id=youtube_id, video=f"video/{uid}.mp4",
                                      image=f"frames/{uid}.jpg", audio=f"audio/{uid}.wav",
                                      label=" ".join(label.replace("_", " ").split()).lower(),
                                      extra={"start_seconds": int(start), "split": row_split}))
