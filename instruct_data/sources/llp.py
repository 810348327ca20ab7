"""LLP, Look, Listen and Parse (Tian et al., ECCV 2020): when each event is both heard and seen in 10 s videos.

Format: github.com/YapengTian/AVVP-ECCV20, `data/AVVP_eval_audio.csv` and `data/AVVP_eval_visual.csv`,
tab-separated with the header `filename onset offset event_labels`; one event segment per row at
1 s resolution, audio and visual events annotated apart:

    KSRjje7GH44_60_70	0	8	Speech

`filename` is `<youtube_id>_<start>_<end>` of the 10 s clip (a few ids lost leading characters in the
release, e.g. `P7x4FV4lg_570_580`; they are kept as written). The dense labels cover only the val and
test videos, listed by the weak-label files `AVVP_val_pd.csv` and `AVVP_test_pd.csv` (`filename
event_labels`); `AVVP_train.csv` lists the train videos, which have no segments, so --split train
yields no Records. Without --split every annotated video is read. Eight annotated videos are in no split
file (ids that lost characters: `VMTJRpjbE_150_160` for `1-VMTJRpjbE_150_160`); with --split their
rows are rejected in every split, as "bad_value".

An event is audio-visual where its audio and visual segments of the same class intersect (the paper's
audio-visual ground truth). All rows of one (filename, class) become one Record with those
intersections, or one Reject "not_audio_visual" when they never intersect; `ref` lists every row in
both files. `visible_labels` are the classes with any visual segment in the clip. --annotations is the
directory holding these CSVs (the repo's `data/`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import open_text, surplus_tsv_fields
from meerkat.grounding import merge_segments

NAME = "llp"
TASKS = ("igatl", "avfc")
INPUTS = ("AVVP_eval_audio.csv, AVVP_eval_visual.csv (+ AVVP_train.csv, AVVP_val_pd.csv, AVVP_test_pd.csv "
          "for --split) from github.com/YapengTian/AVVP-ECCV20/data (the directory holding them)")
MEDIA = ("video/<youtube_id>.mp4 as scripts/download_dataset.py writes them (media root = data/LLP_dataset); "
         "frames/<uid>.jpg and audio/<youtube_id>.wav are extracted from it")

MODALITIES = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}
SPLIT_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
HEADER = ["filename", "onset", "offset", "event_labels"]
DURATION = 10.0
# LLP joins AudioSet's comma-separated names with "_"; these read as the same class in audioset_strong and ave.
ALTERNATIVES = {"Baby_cry_infant_cry": "baby cry, infant cry", "Chicken_rooster": "chicken, rooster",
                "Violin_fiddle": "violin, fiddle"}


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per audio-visual event class of a clip, and a Reject per unusable row or class."""
    folder = Path(annotations)
    lists = _split_lists(folder, split)
    # (filename, class) -> modality -> [(line number, [onset, offset])]
    events: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {m: [] for m in MODALITIES})
    for modality, name in MODALITIES.items():
        for number, filename, value in _rows(folder / name):
            if lists and filename not in lists[split]:
                if any(filename in names for names in lists.values()):
                    continue  # another split's video
                if not isinstance(value, Reject):  # reported in every split, as no split owns it
                    value = Reject("bad_value", f"filename={filename!r} is listed in none of "
                                                f"{', '.join(SPLIT_FILES.values())}")
            if isinstance(value, Reject):
                yield Row(f"{name}:{number}", value)
            else:
                label, segment = value
                events[filename, label][modality].append((number, segment))
    visible = defaultdict(set)
    for (filename, label), rows in events.items():
        if rows["visual"]:
            visible[filename].add(label)
    for (filename, label), rows in events.items():
        yield _event(filename, label, rows, sorted(visible[filename]), split)


def _split_lists(folder: Path, split: str | None) -> dict[str, set[str]] | None:
    """Split -> the filenames its weak-label file lists; None without --split."""
    if split is None:
        return None
    if split not in SPLIT_FILES:
        raise ValueError(f"LLP splits are {', '.join(SPLIT_FILES)}; got --split {split!r}")
    lists = {}
    for name, filename in SPLIT_FILES.items():
        path = folder / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --split needs {', '.join(SPLIT_FILES.values())} "
                                    f"from AVVP-ECCV20/data beside the eval CSVs")
        with open_text(path) as f:
            f.readline()  # header: filename, event_labels
            lists[name] = {line.split("\t", 1)[0].strip() for line in f if line.strip()}
    return lists


def _rows(path: Path) -> Iterator[tuple[int, str, tuple[str, list[float]] | Reject]]:
    """(line number, filename, (class, [onset, offset]) or Reject) per data row of one eval CSV."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the directory holding "
                                f"{' and '.join(MODALITIES.values())} (AVVP-ECCV20/data)")
    with open_text(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != HEADER:
            raise ValueError(f"{path}: header is {header}, expected {HEADER} (an LLP eval CSV)")
        for number, line in enumerate(f, start=2):
            if line.strip():
                fields = [value.strip() for value in line.rstrip("\n").split("\t")]
                yield number, fields[0], _parse(fields)


def _parse(fields: list[str]) -> tuple[str, list[float]] | Reject:
    if reject := surplus_tsv_fields(fields, HEADER):
        return reject
    named = dict(zip(HEADER, fields))
    missing = [name for name in HEADER if not named.get(name)]
    if missing:
        return Reject("missing_field", f"{missing[0]} is missing or empty")
    filename, onset, offset, event = fields
    if not re.fullmatch(r".+_\d+_\d+", filename):
        return Reject("bad_value", f"filename={filename!r} is not <youtube_id>_<start>_<end>")
    try:
        start, end = float(onset), float(offset)
    except ValueError:
        return Reject("bad_value", f"onset/offset={onset!r}/{offset!r} are not numbers")
    if not 0 <= start < end <= DURATION:
        return Reject("segment_past_end", f"[{onset}, {offset}] of {event} is not a segment within the "
                                          f"{DURATION:g} s clip")
    return ALTERNATIVES.get(event, event.replace("_", " ").lower()), [start, end]


def _event(filename: str, label: str, rows: dict[str, list], visible: list[str], split: str | None) -> Row:
    ref = "; ".join(f"{name}:{','.join(str(number) for number, _ in rows[m])}"
                    for m, name in MODALITIES.items() if rows[m])
    heard, seen = (merge_segments([segment for _, segment in rows[m]]) for m in MODALITIES)
    both = [[max(a[0], v[0]), min(a[1], v[1])] for a in heard for v in seen if max(a[0], v[0]) < min(a[1], v[1])]
    if not both:
        return Row(ref, Reject("not_audio_visual", f"{label} in {filename} is heard at {heard or 'no time'} "
                                                   f"and seen at {seen or 'no time'}, never both"))
    segments = merge_segments(both)
    youtube_id = filename.rsplit("_", 2)[0]
    uid = f"{filename}_{re.sub(r'[^a-z0-9]+', '_', label).strip('_')}"
    longest = max(segments, key=lambda s: s[1] - s[0])
    return Row(ref, Record(uid=uid, clip_id=youtube_id, label=label, segments=segments, duration=DURATION,
                           visible_labels=visible, video=f"video/{youtube_id}.mp4", image=f"frames/{uid}.jpg",
                           audio=f"audio/{youtube_id}.wav", frame_time=(longest[0] + longest[1]) / 2,
                           extra={"filename": filename, "split": split}))
