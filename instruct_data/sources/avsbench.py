"""AVSBench (Zhou et al., ECCV 2022, "Audio-Visual Segmentation"; github.com/OpenNLPLab/AVSBench): 5 s
YouTube clips with a binary mask of the sounding object(s) on one frame per second. The tight box around
a mask's foreground becomes the ARIG target.

Format: the AVSBench-object release linked from the repository's `avsbench_data/readme.md`. The paths and
columns below are those that the repository's `avs_scripts/avs_{s4,ms3}/{config,dataloader}.py` and
`preprocess_scripts/preprocess_{s4,ms3}.py` read, under one root, `avsbench_data/`:

    Single-source/s4_meta_data.csv   S4: one sounding object of 23 classes; columns name, start time,
                                     category, split (a row like "5csYYtS7Pck,0,dog_barking,train")
    Multi-sources/ms3_meta_data.csv  MS3: several sounding objects, no class; columns name, split
    {Single-source/s4,Multi-sources/ms3}_data/gt_masks/...  one PNG per mask (see PATHS)

`name`, `category` and `split` are read by their header, as the public S4 loaders read them. The MS3
name is read from the first column, as `preprocess_ms3.py` does, because we found no published copy of
that header. The start-time column is not used.

Masks: the official loaders read mask k = 1 only for S4 train videos, and k = 1..5 for S4 val/test and
for every MS3 video. Each of those masks is one row here: a Record, or a Reject when the file is missing
(`missing_field`), unreadable (`bad_value`) or has no foreground (`empty_mask`). Foreground is any pixel
that is not black; the release's masks are 224 x 224. The box runs from the first foreground column and
row to one past the last, divided by the mask's width and height. MS3 masks mark every sounding object,
so their box covers them all.

`--annotations` and the media root are both `avsbench_data/`; either subset may be absent. Splits are the
`split` column (train, val, test). Frames and wavs are where the release puts them (PATHS); a record's
audio is the whole 5 s clip, and its image is frame k, taken near the end of second k.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import inside, open_text, surplus_fields

NAME = "avsbench"
TASKS = ("arig",)
INPUTS = ("the AVSBench-object root (avsbench_data/) with Single-source/s4_meta_data.csv + s4_data/gt_masks/ and/or "
          "Multi-sources/ms3_meta_data.csv + ms3_data/gt_masks/, from github.com/OpenNLPLab/AVSBench")
MEDIA = ("the release layout under avsbench_data/, as the official loaders read it: frames in "
         "{Single-source/s4,Multi-sources/ms3}_data/visual_frames/ and wavs in .../audio_wav/ (see PATHS)")

SPLITS = ("train", "val", "test")
META = {"s4": "Single-source/s4_meta_data.csv", "ms3": "Multi-sources/ms3_meta_data.csv"}
PATHS = {  # (frame, mask, wav) of mask k, as the official loaders build them
    "s4": ("Single-source/s4_data/visual_frames/{split}/{category}/{name}/{name}_{k}.png",
           "Single-source/s4_data/gt_masks/{split}/{category}/{name}/{name}_{k}.png",
           "Single-source/s4_data/audio_wav/{split}/{category}/{name}.wav"),
    "ms3": ("Multi-sources/ms3_data/visual_frames/{name}/{name}.mp4_{k}.png",
            "Multi-sources/ms3_data/gt_masks/{split}/{name}/{name}_{k}.png",
            "Multi-sources/ms3_data/audio_wav/{split}/{name}.wav"),
}


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per mask of the videos in `split` (all when None), or a Reject naming the bad field."""
    root = Path(annotations)
    if split is not None and split not in SPLITS:
        raise ValueError(f"AVSBench has the splits {', '.join(SPLITS)}; got --split {split!r}")
    subsets = [subset for subset, meta in META.items() if (root / meta).is_file()]
    if not subsets:
        raise FileNotFoundError(f"neither {root / META['s4']} nor {root / META['ms3']} exists: pass the "
                                "avsbench_data/ root of the release (github.com/OpenNLPLab/AVSBench)")
    for subset in subsets:
        yield from _read_subset(root, subset, split)


def _read_subset(root: Path, subset: str, split: str | None) -> Iterator[Row]:
    with open_text(root / META[subset], newline="") as f:
        reader = csv.DictReader(f)
        required = ("name", "category", "split") if subset == "s4" else ("split",)
        if not set(required) <= set(reader.fieldnames or ()):
            raise ValueError(f"{root / META[subset]} has the columns {reader.fieldnames}; expected "
                             f"{', '.join(required)} in its header, as the release has")
        name_column = "name" if subset == "s4" else reader.fieldnames[0]
        for fields in reader:
            ref = f"{META[subset]}:{reader.line_num}"
            if reject := surplus_fields(fields, reader.fieldnames):
                yield Row(ref, reject)
                continue
            name, row_split = (fields.get(name_column) or "").strip(), (fields.get("split") or "").strip()
            category = (fields.get("category") or "").strip() if subset == "s4" else None
            missing = [column for column, value in ((name_column, name), ("category", category)) if value == ""]
            if not row_split:
                yield Row(ref, Reject("missing_field", "split is empty"))
            elif row_split not in SPLITS:
                yield Row(ref, Reject("bad_value", f"split={row_split!r}, expected one of {', '.join(SPLITS)}"))
            elif split is not None and row_split != split:
                continue
            elif missing:
                yield Row(ref, Reject("missing_field", f"{missing[0]} is empty"))
            else:
                for k in range(1, 2 if (subset, row_split) == ("s4", "train") else 6):
                    yield Row(f"{ref} mask {k}", _record(root, subset, name, category, row_split, k))


def _record(root: Path, subset: str, name: str, category: str | None, split: str, k: int) -> Record | Reject:
    image, mask, audio = (path.format(split=split, category=category, name=name, k=k) for path in PATHS[subset])
    if not inside(root, mask):  # name and category come from the CSV: check before opening what they name
        return Reject("path_escape", f"mask {mask}: leaves the dataset root {root} "
                                     f"(name={name!r}, category={category!r})")
    try:
        with Image.open(root / mask) as png:
            foreground = np.asarray(png.convert("L")) > 0
    except FileNotFoundError:
        return Reject("missing_field", f"mask {mask}: file not found")
    except OSError:  # PIL raises UnidentifiedImageError (an OSError) for a file that is not an image
        return Reject("bad_value", f"mask {mask}: not a readable image")
    rows, columns = np.nonzero(foreground)
    if rows.size == 0:
        return Reject("empty_mask", f"mask {mask}: no foreground pixel")
    height, width = foreground.shape
    box = [columns.min() / width, rows.min() / height, (columns.max() + 1) / width, (rows.max() + 1) / height]
    return Record(uid=f"{subset}/{name}_{k}", clip_id=name, image=image, audio=audio,
                  label=" ".join(category.replace("_", " ").split()).lower() if category else None,
                  boxes=[[float(v) for v in box]], extra={"subset": subset, "frame": k, "split": split})
