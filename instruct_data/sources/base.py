"""What every source module provides, and the normalised record it yields per annotation row.

A source module (one per dataset, e.g. `instruct_data/sources/vggss.py`) defines:

    NAME: str                 # CLI name, e.g. "vggss"
    TASKS: tuple[str, ...]    # tasks it feeds, e.g. ("arig",)
    INPUTS: str               # the annotation file(s) it expects and where they are published
    MEDIA: str                # the media layout it expects under --media-root
    def read(annotations: Path, split: str | None) -> Iterator[Row]

`read` parses the dataset's published annotation format and yields one `Row` per input row:
either a `Record` or a `Reject` naming why the row cannot be converted. It must never drop a row
silently. Media paths in a Record are relative to the media root; the converter checks that they
exist and stay inside the root, and rejects a Record whose uid came earlier ("duplicate_id"), so
sources need not. Sources that ship videos set `video` (and `frame_time`) and name where the frame
and wav should go (e.g. image="frames/<id>.jpg", audio="audio/<id>.wav"); the converter extracts
them with ffmpeg when they are not there yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Record:
    """One annotation row, normalised. Fields a task does not need stay None."""

    uid: str  # unique within the source: the sample ids are f"{source}/{uid}/{task}..."
    clip_id: str  # the underlying video/clip id: splits keep all samples of a clip together
    image: str | None = None  # media paths relative to the media root
    audio: str | None = None
    label: str | None = None  # the sounding object / event class, in plain words ("dog", "acoustic guitar")
    boxes: list[list[float]] | None = None  # normalised [x1, y1, x2, y2] in [0, 1] (ARIG)
    segments: list[list[float]] | None = None  # [start, end] seconds within the clip (IGATL)
    duration: float | None = None  # clip length in seconds (segments are checked against it; cut to the audio when shorter)
    question: str | None = None  # AVQA
    answer: str | None = None
    question_type: str | None = None
    captions: list[str] | None = None  # AVC / audio captioning (first is used for the answer; all kept as targets)
    visible_labels: list[str] | None = None  # classes visible in the image (AVFC type 2 negatives)
    video: str | None = None  # for video sources: the video under the media root; the converter extracts
    frame_time: float | None = None  # `image` (the frame at frame_time, default the middle) and `audio` from it
    extra: dict = field(default_factory=dict)  # source-specific fields worth keeping in the sample


@dataclass
class Reject:
    """An input row that is not converted. `reason` is a short key counted in the summary
    (e.g. "missing_field", "box_outside_image", "segment_past_end", "empty_answer", "bad_value");
    `detail` says exactly what, field and value, for the rejects file."""

    reason: str
    detail: str


@dataclass
class Row:
    """One input row: a Record, or a Reject. `ref` locates it in the input, file and line or
    index (e.g. "vggss.json[12]", "ave/testSet.txt:7"), so a user can find it."""

    ref: str
    value: Union[Record, Reject]


def check_fields(row: object, fields: tuple[str, ...]) -> Reject | None:
    """The usual first check of a JSON row: an object holding every field the source reads, none of
    them null (str(None) would turn a null question or id into the text "None")."""
    if not isinstance(row, dict):
        return Reject("bad_value", f"row is a {type(row).__name__}, not an object")
    missing = [f for f in fields if f not in row]
    if missing:
        return Reject("missing_field", f"no {', '.join(missing)}")
    null = [f for f in fields if row[f] is None]
    return Reject("missing_field", f"{', '.join(null)} is null") if null else None


def is_number(value: object) -> bool:
    """A JSON number: Python's bools are ints, but `true` is no coordinate or time."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
