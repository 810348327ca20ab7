"""AudioSet strongly-labelled subset (Hershey et al., ICASSP 2021): when each sound is heard in a 10 s clip.

Format: research.google.com/audioset/download_strong.html, `audioset_train_strong.tsv` and
`audioset_eval_strong.tsv`, tab-separated with the header `segment_id start_time_seconds
end_time_seconds label`; one sound event per row, the label an AudioSet MID:

    s9d-2nhuJCQ_30000	2.627	7.237	/m/053hz1

`segment_id` is `<youtube_id>_<clip start in ms>` (Cheering from 2.627 s to 7.237 s of the clip that
starts 30 s into s9d-2nhuJCQ). MIDs become names with `mid_to_display_name.tsv` from the same page
(`/m/053hz1<TAB>Cheering`, no header), or else `class_labels_indices.csv` (`index,mid,display_name`)
from the original AudioSet release, which lacks a few strong-only classes. The framed
`audioset_eval_strong_framed_posneg.tsv` is not read.

All rows of one (segment_id, label) become one Record with their segments merged where they overlap;
its `ref` lists their lines. --annotations is the directory holding the TSVs and the label map, or one
TSV with the label map beside it. Splits follow the files: train is the train TSV, test the eval TSV;
there is no val split. No --split reads the TSVs that are there.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import open_text, surplus_tsv_fields
from meerkat.grounding import merge_segments

NAME = "audioset_strong"
TASKS = ("igatl",)
INPUTS = ("audioset_train_strong.tsv, audioset_eval_strong.tsv and mid_to_display_name.tsv (or "
          "class_labels_indices.csv) from research.google.com/audioset/download_strong.html "
          "(the directory holding them, or one TSV with the label map beside it)")
MEDIA = ("videos/<segment_id>.mp4: the 10 s clip named as in the TSV (e.g. videos/s9d-2nhuJCQ_30000.mp4, "
         "30-40 s of s9d-2nhuJCQ); frames/<uid>.jpg and audio/<segment_id>.wav are extracted from it")

SPLIT_FILES = {"train": "audioset_train_strong.tsv", "test": "audioset_eval_strong.tsv"}
HEADER = ["segment_id", "start_time_seconds", "end_time_seconds", "label"]
DURATION = 10.0


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per (clip, sound class) and one Reject per unusable row."""
    paths = _files(Path(annotations), split)
    names = _label_names(paths[0].parent)
    for path in paths:
        yield from _read_file(path, names)


def _files(annotations: Path, split: str | None) -> list[Path]:
    if split is not None and split not in SPLIT_FILES:
        raise ValueError(f"AudioSet strong has the splits train and test (the eval TSV); got --split {split!r}")
    if annotations.is_file():
        if split is not None and annotations.name != SPLIT_FILES[split]:
            raise ValueError(f"{annotations.name} is not the {split} split: pass {SPLIT_FILES[split]}, "
                             f"its directory, or leave out --split")
        return [annotations]
    wanted = [annotations / SPLIT_FILES[s] for s in ([split] if split else SPLIT_FILES)]
    present = [path for path in wanted if path.is_file()]
    if not present or (split and present != wanted):
        raise FileNotFoundError(f"{wanted[0]} not found: pass the directory holding "
                                f"{' and/or '.join(SPLIT_FILES.values())}, or one of those files")
    return present


def _label_names(folder: Path) -> dict[str, str]:
    """MID -> display name, from whichever published label map is in `folder`."""
    if (folder / "mid_to_display_name.tsv").is_file():
        names = {}
        with open_text(folder / "mid_to_display_name.tsv") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                mid, tab, name = line.rstrip("\n").partition("\t")
                if not (tab and name):
                    raise ValueError(f"{folder / 'mid_to_display_name.tsv'}:{number}: expected <MID><TAB><name>")
                names[mid] = name
        return names
    if (folder / "class_labels_indices.csv").is_file():
        with open_text(folder / "class_labels_indices.csv", newline="") as f:
            reader = csv.DictReader(f)
            names = {}
            for row in reader:
                if None in row.values() or None in row:  # a field too few, or an unquoted comma in a name
                    raise ValueError(f"{folder / 'class_labels_indices.csv'}:{reader.line_num}: expected "
                                     f"index,mid,display_name with a name holding commas quoted")
                names[row["mid"]] = row["display_name"]
            return names
    raise FileNotFoundError(f"no label map in {folder}: put mid_to_display_name.tsv (download_strong.html) "
                            f"or class_labels_indices.csv beside the TSV")


def _read_file(path: Path, names: dict[str, str]) -> Iterator[Row]:
    events: dict[tuple[str, str], dict] = {}  # (segment_id, mid) -> lines, segments
    with open_text(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != HEADER:
            raise ValueError(f"{path}: header is {header}, expected {HEADER} (an AudioSet strong-label TSV)")
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            ref = f"{path.name}:{number}"
            empty = [name for name, value in zip(HEADER, fields + [""] * 4) if not value.strip()]
            if empty:
                yield Row(ref, Reject("missing_field", f"{empty[0]} is missing or empty"))
                continue
            if reject := surplus_tsv_fields(fields, HEADER):
                yield Row(ref, reject)
                continue
            segment_id, start, end, mid = (value.strip() for value in fields)
            if not re.fullmatch(r".+_\d+", segment_id):
                yield Row(ref, Reject("bad_value", f"segment_id={segment_id!r} is not <youtube_id>_<start_ms>"))
                continue
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                yield Row(ref, Reject("bad_value", f"start/end_time_seconds={start!r}/{end!r} are not numbers"))
                continue
            if not 0 <= start_s < end_s <= DURATION:
                yield Row(ref, Reject("segment_past_end",
                                      f"[{start}, {end}] is not a segment within the {DURATION:g} s clip"))
                continue
            if mid not in names:
                yield Row(ref, Reject("bad_value", f"label={mid!r} is not in the label map"))
                continue
            event = events.setdefault((segment_id, mid), {"lines": [], "segments": []})
            event["lines"].append(str(number))
            event["segments"].append([start_s, end_s])
    split = next((s for s, name in SPLIT_FILES.items() if name == path.name), None)
    for (segment_id, mid), event in events.items():
        segments = merge_segments(event["segments"])
        label = names[mid].lower()
        uid = f"{segment_id}_{re.sub(r'[^a-z0-9]+', '_', label).strip('_')}"
        longest = max(segments, key=lambda s: s[1] - s[0])
        yield Row(f"{path.name}:{','.join(event['lines'])}",
                  Record(uid=uid, clip_id=segment_id.rsplit("_", 1)[0], label=label, segments=segments,
                         duration=DURATION, video=f"videos/{segment_id}.mp4", image=f"frames/{uid}.jpg",
                         audio=f"audio/{segment_id}.wav", frame_time=(longest[0] + longest[1]) / 2,
                         extra={"mid": mid, "segment_id": segment_id, "split": split}))
