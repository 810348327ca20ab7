"""VGG-Sound Source, VGG-SS (Chen et al., CVPR 2021, "Localizing Visual Sounds the Hard Way"): boxes
around the visible sound source(s) in 5,158 VGGSound clips, a sound-localisation benchmark.

Format: `metadata/vggss.json` in github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way, one JSON list
with one object per clip:

    {"file": "ORaz32CQ29k_000130", "class": "coyote howling",
     "bbox": [[0.121875, 0.171875, 0.6, 0.853125], [0.765625, 0.275, 0.984375, 0.565625]]}

`file` names the VGGSound clip, `<youtube_id>_<start_seconds:06d>` (YouTube ids may hold "_" themselves,
e.g. "RDG7jY7P_8M_000088"). `class` is the VGGSound class name, and `bbox` holds one [x1, y1, x2, y2] per
sounding object, already normalised to [0, 1]. Every box is kept. In the published file, 18 rows hold a
broken box: it has no width or no height, or a corner at -2.88e16 (e.g. "MKC9LvRivTM_000030"). Those rows
are rejected whole, so that no row loses a box without anyone knowing.

Splits: the file has no split field. All its rows are the benchmark's test set, which
`metadata/vggss_test.csv` also lists. So --split test (or none) reads every row, and --split train or
val is an error: converting the benchmark as training data would leak it into anything evaluated on
VGG-SS. Do not mix this source into training data that you evaluate on VGG-SS.

Media: the clips are VGGSound's, laid out as the `vggsound` source expects them. The repository does not
say which frame the boxes were drawn on (its test code reads one pre-extracted frame per clip), so the
converter takes the middle of the clip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row, is_number
from instruct_data.sources.files import load_json_list

NAME = "vggss"
TASKS = ("arig",)
INPUTS = ("vggss.json (a JSON list of {file, class, bbox}) from "
          "github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way/metadata")
MEDIA = ("video/<youtube_id>_<start:06d>.mp4, the 10 s VGGSound clips; the converter extracts the middle frame "
         "to frames/<same>.jpg and the sound to audio/<same>.wav")

CLIP = re.compile(r"(?P<youtube_id>.+)_(?P<start>\d+)")


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per clip, or a Reject naming the bad field. Every row is a test row (see above)."""
    if split not in (None, "test"):
        raise ValueError(f"VGG-SS is a test benchmark: every row of vggss.json is a test clip, so --split {split} "
                         "would turn it into training data; convert it with --split test or without --split")
    path = Path(annotations)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass metadata/vggss.json from "
                                "github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way")
    for index, row in enumerate(load_json_list(path, "clips")):
        yield Row(f"{path.name}[{index}]", _record(row))


def _record(row) -> Record | Reject:
    if not isinstance(row, dict):
        return Reject("bad_value", f"row is a JSON {type(row).__name__}, expected an object")
    for key in ("file", "class", "bbox"):
        if not row.get(key):
            return Reject("missing_field", f"{key} is missing or empty")
    uid, boxes = str(row["file"]), row["bbox"]
    clip = CLIP.fullmatch(uid)
    if clip is None:
        return Reject("bad_value", f"file={uid!r} is not <youtube_id>_<start_seconds>")
    if not isinstance(boxes, list):
        return Reject("bad_value", f"bbox={boxes!r} is not a list of boxes")
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)):
            return Reject("bad_value", f"bbox: {box!r} is not four numbers")
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            return Reject("box_outside_image", f"bbox: {box} is not a normalised [x1, y1, x2, y2] inside the image")
    return Record(uid=uid, clip_id=clip["youtube_id"], video=f"video/{uid}.mp4", image=f"frames/{uid}.jpg",
                  audio=f"audio/{uid}.wav", label=" ".join(str(row["class"]).replace("_", " ").split()).lower(),
                  boxes=[[float(v) for v in box] for box in boxes], extra={"start_seconds": int(clip["start"])})
