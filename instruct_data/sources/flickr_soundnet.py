"""Flickr-SoundNet sound-source localisation set (Senocak et al., CVPR 2018, "Learning to Localize Sound
Source in Visual Scenes"): frames of Flickr videos with boxes around the object that makes the sound,
each frame marked by three annotators. Its 250 test images are the usual benchmark (LVS, EZ-VSL, SSPL).

Format: the "Sound Localization dataset" linked from github.com/ardasnck/learning_to_localize_sound_source.
Its README says: "5k image-sound pairs and their annotations in XML format. Each XML file has annotations
of 3 annotators". There is one `Annotations/<flickr_id>.xml` per image. The same repository's
`test_list.txt` names the 250 test images, one `<flickr_id>.png` per line.

We found no XML file published in any repository we could search, so the tag names other than `bbox` are
unknown. We read the files as every public loader does (LVS `test.py`, EZ-VSL, SSPL `utils.testset_gt`):
each `bbox` element two levels below the root is one box; its first child is skipped and the next four
are xmin, ymin, xmax, ymax in integer pixels of a 256 x 256 image (those loaders scale them by 224/256).
So a file reads like this (tag names other than `bbox` are illustrative):

    <annotation>
      <object>
        <bbox><id>1</id><xmin>40</xmin><ymin>64</ymin><xmax>168</xmax><ymax>224</ymax></bbox>
      </object>
      ...
    </annotation>

All boxes of all annotators are kept, divided by 256. The set has no class labels.

Splits: `test` is the images in `test_list.txt`, `train` every other annotated image; there is no val.

`--annotations` is the folder that holds `Annotations/` and `test_list.txt`. The list is needed only when
a split is asked for; when it is there, each record's `extra` names its split. Media follow the layout
that LVS and EZ-VSL use for this set: `frames/<id>.jpg` and `audio/<id>.wav`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import read_text

NAME = "flickr_soundnet"
TASKS = ("arig",)
INPUTS = ("a folder with Annotations/<flickr_id>.xml (the Sound Localization dataset linked from "
          "github.com/ardasnck/learning_to_localize_sound_source) and that repository's test_list.txt")
MEDIA = "frames/<flickr_id>.jpg and audio/<flickr_id>.wav, as in the LVS / EZ-VSL release of the test set"

SPLITS = ("train", "test")
SIZE = 256  # the annotations are pixels of a 256 x 256 image


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per annotated image of `split` (all when None), or a Reject naming the bad field."""
    root = Path(annotations)
    if split is not None and split not in SPLITS:
        raise ValueError(f"Flickr-SoundNet has only the {' and '.join(SPLITS)} splits; got --split {split!r}")
    xml_dir = root / "Annotations"
    if not xml_dir.is_dir():
        raise FileNotFoundError(f"{xml_dir} not found: pass the folder that holds Annotations/<flickr_id>.xml")
    test_list = root / "test_list.txt"
    if split is not None and not test_list.is_file():
        raise FileNotFoundError(f"{test_list} not found: --split needs test_list.txt from "
                                "github.com/ardasnck/learning_to_localize_sound_source")
    test_ids = ({Path(line.strip()).stem for line in read_text(test_list).splitlines() if line.strip()}
                if test_list.is_file() else None)
    for path in sorted(xml_dir.glob("*.xml")):
        row_split = None if test_ids is None else "test" if path.stem in test_ids else "train"
        if split is not None and row_split != split:
            continue
        yield Row(f"Annotations/{path.name}", _record(path, row_split))


def _record(path: Path, split: str | None) -> Record | Reject:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return Reject("bad_value", f"{path.name} is not well-formed XML: {e}")
    bboxes = [element for child in root for element in child if element.tag == "bbox"]
    if not bboxes:
        return Reject("missing_field", "no <bbox> element two levels below the root")
    boxes = []
    for number, bbox in enumerate(bboxes, start=1):
        corners = [child.text for child in bbox][1:5]
        if len(corners) < 4:
            return Reject("missing_field", f"bbox {number} has {len(corners)} of xmin, ymin, xmax, ymax")
        try:
            x1, y1, x2, y2 = (float(text) for text in corners)
        except (TypeError, ValueError):
            return Reject("bad_value", f"bbox {number}: {corners} are not pixel numbers")
        if not (0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE):
            return Reject("box_outside_image", f"bbox {number}: {[x1, y1, x2, y2]} is not inside the "
                                               f"{SIZE} x {SIZE} image with x1 < x2, y1 < y2")
        boxes.append([x1 / SIZE, y1 / SIZE, x2 / SIZE, y2 / SIZE])
    uid = path.stem
    return Record(uid=uid, clip_id=uid, image=f"frames/{uid}.jpg", audio=f"audio/{uid}.wav", boxes=boxes,
                  extra={"split": split} if split else {})
