"""AVQA (Yang et al., ACM MM 2022): multiple-choice questions on 10 s VGGSound clips.

Published format: the annotation files `train_qa.json` and `val_qa.json` from the dataset site
(https://mn.cs.tsinghua.edu.cn/avqa), read as `<mode>_qa.json` by AlyssaYoung/AVQA
`preprocess/preprocess_text/preprocess_questions.py` and parsed in `.../datautils/avqa.py`. Each file
is a JSON list of rows like

    {"id": 1139, "video_name": "06GyG4-wONQ_000006", "video_id": 1395,
     "question_text": "How many animals are there in the video?", "multi_choice": ["3", "One", "4", "2"],
     "answer": 3, "question_relation": "Both", "question_type": "Which"}

`answer` indexes `multi_choice`; the answer text is that option. `question_type` is one of Which, Come
From, Happening, Where, Why, Before Next, When, Used For; `question_relation` (View / Sound / Both)
says which modality the question needs. Options, answer index and relation go to `extra`; options are
kept as published (the official loader tolerates null options, so a null that is not the answer stays).
`video_name` is VGGSound's `<youtube_id>_<start, 6 digits>`: clip_id is the YouTube id, or the whole
name when it does not follow that pattern. uid is `<video_name>/<id>`, unique even if `id` restarts
per file.

Split: the file name (`<split>_qa.json`). `--annotations` is one of those files or the folder holding them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from instruct_data.sources.base import Record, Reject, Row, check_fields
from instruct_data.sources.files import json_rows

NAME = "avqa"
TASKS = ("avqa",)
INPUTS = "train_qa.json, val_qa.json (or the folder holding them) from https://mn.cs.tsinghua.edu.cn/avqa"
MEDIA = ("video/<video_name>.mp4, as in AlyssaYoung/AVQA's data/ folder; the converter extracts "
         "frames/<video_name>.jpg (middle frame) and audio/<video_name>.wav (the release's data/audio "
         "wavs can be put there instead)")

SPLITS = ("train", "val", "test")
FILE_NAME = "{}_qa.json"  # {} is the split
HINT = "pass the AVQA annotation folder or one of its files"
FIELDS = ("id", "video_name", "question_text", "multi_choice", "answer", "question_type")
VGGSOUND_NAME = re.compile(r"^(?P<youtube_id>.+)_\d{6}$")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """One Row per question row of the split's file(s), in file order."""
    for ref, row in json_rows(Path(annotations), split, FILE_NAME, SPLITS, HINT, "question rows"):
        yield Row(ref, _record(row))


def _record(row: object) -> Record | Reject:
    if reject := check_fields(row, FIELDS):
        return reject
    options = row["multi_choice"]
    if not isinstance(options, list) or not options:
        return Reject("bad_value", f"multi_choice={options!r} is not a list of options")
    index = row["answer"]
    if type(index) is not int or not 0 <= index < len(options):
        return Reject("bad_value", f"answer={index!r} is not an index into multi_choice "
                                   f"({len(options)} options)")
    if options[index] is None or not str(options[index]).strip():
        return Reject("empty_answer", f"answer={index} picks multi_choice[{index}]={options[index]!r}")
    question = str(row["question_text"]).strip()
    if not question:
        return Reject("bad_value", "question_text is empty")
    name = str(row["video_name"])
    match = VGGSOUND_NAME.match(name)
    return Record(uid=f"{name}/{row['id']}", clip_id=match["youtube_id"] if match else name,
                  video=f"video/{name}.mp4", image=f"frames/{name}.jpg", audio=f"audio/{name}.wav",
                  question=question, answer=str(options[index]).strip(), question_type=str(row["question_type"]),
                  extra={"options": options, "answer_index": index,
                         "question_relation": row.get("question_relation")})
