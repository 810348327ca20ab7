"""MUSIC-AVQA (Li et al., CVPR 2022): open-ended questions on videos of musical performances.

Published format: GeWu-Lab/MUSIC-AVQA, `data/json/avqa-train.json`, `avqa-val.json` and
`avqa-test.json`, read by the official `net_grd_avst/dataloader_avst.py`. Each file is a JSON list of
rows like

    {"video_id": "00000272", "question_id": 50, "type": "[\\"Audio-Visual\\", \\"Temporal\\"]",
     "question_content": "Where is the <FL> sounding instrument?", "templ_values": "[\\"first\\"]",
     "question_deleted": 0, "anser": "left"}

`type` and `templ_values` are lists written as strings, and the answer key really is spelled `anser`.
Each `<...>` placeholder (`<Object>`, `<LocationQ>`, `<FL>`, ...) takes the next `templ_values` entry,
as in the official loader: "Where is the first sounding instrument?". `question_deleted` is ignored
there and here. `question_id` is the uid (the converter rejects one repeated in any file read).

Split: the file name (`avqa-<split>.json`). `--annotations` is one of those files or the folder
holding them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

from instruct_data.sources.base import Record, Reject, Row, check_fields
from instruct_data.sources.files import json_rows

NAME = "music_avqa"
TASKS = ("avqa",)
INPUTS = ("avqa-train.json, avqa-val.json, avqa-test.json (or the folder holding them) from "
          "https://github.com/GeWu-Lab/MUSIC-AVQA/tree/main/data/json")
MEDIA = ("videos/<video_id>.mp4: the release's raw videos (Real and Synthetic in one folder); the converter "
         "extracts frames/<video_id>.jpg (middle frame) and audio/<video_id>.wav from them")

SPLITS = ("train", "val", "test")
FILE_NAME = "avqa-{}.json"  # {} is the split
HINT = "pass the data/json folder of GeWu-Lab/MUSIC-AVQA or one of its files"
FIELDS = ("video_id", "question_id", "type", "question_content", "templ_values", "anser")
PLACEHOLDER = re.compile(r"<[^<>]+>")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """One Row per question row of the split's file(s), in file order."""
    for ref, row in json_rows(Path(annotations), split, FILE_NAME, SPLITS, HINT, "question rows"):
        yield Row(ref, _record(row))


def _record(row: object) -> Record | Reject:
    if reject := check_fields(row, FIELDS):
        return reject
    if row["anser"] is None or not str(row["anser"]).strip():
        return Reject("empty_answer", f"anser={row['anser']!r}")
    lists = {}
    for field in ("type", "templ_values"):
        lists[field] = _string_list(row[field])
        if lists[field] is None:
            return Reject("bad_value", f"{field}={row[field]!r} is not a list of strings")
    if not lists["type"]:
        return Reject("bad_value", "type=[] names no question type")
    template = str(row["question_content"])
    slots = PLACEHOLDER.findall(template)
    if len(slots) != len(lists["templ_values"]):
        return Reject("bad_value", f"question_content {template!r} has {len(slots)} placeholders but "
                                   f"templ_values={row['templ_values']!r} has {len(lists['templ_values'])}")
    values = iter(lists["templ_values"])
    question = PLACEHOLDER.sub(lambda _: next(values), template).strip()
    if not question:
        return Reject("bad_value", "question_content is empty")
    video_id = str(row["video_id"])
    return Record(uid=str(row["question_id"]), clip_id=video_id, video=f"videos/{video_id}.mp4",
                  image=f"frames/{video_id}.jpg", audio=f"audio/{video_id}.wav", question=question,
                  answer=str(row["anser"]).strip(), question_type="/".join(lists["type"]))


def _string_list(text: object) -> list[str] | None:
    """`'["piano", "ukulele"]'` -> ["piano", "ukulele"]; None when it is not such a list."""
    try:
        value = text if isinstance(text, list) else ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return None
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value if ok else None
