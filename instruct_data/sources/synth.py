"""The synthetic audio-visual world (`instruct_data/synth`), read back like any public dataset.

    python -m instruct_data synth --out data/synth --n 5000      # generate and convert every split
    python -m instruct_data convert synth --annotations data/synth --media-root data/synth --out synth.jsonl

Each scene line gives one Record for the sounding object (box, segments, label, caption: ARIG, IGATL,
AVFC, AVC) and one Record per QA pair (question/answer only: AVQA).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row, is_number
from instruct_data.sources.files import open_text

NAME = "synth"
TASKS = ("arig", "igatl", "avfc", "avqa", "avc")
INPUTS = ("annotations.jsonl (or the directory holding it) written by instruct_data.synth.generate, "
          "e.g. by `python -m instruct_data synth --out data/synth --n 5000`; nothing to download")
MEDIA = ("images/<scene_id>.png (224x224 RGB) and audio/<scene_id>.flac (10 s, 16 kHz mono; with --views, the "
         "take's first scene's) beside annotations.jsonl: pass that directory as the media root")

FILE = "annotations.jsonl"
SPLITS = ("train", "val", "test")
# The closed answer sets of the world's question types ("which" and "how many" depend on the scene).
OPTIONS = {"where": ["left", "center", "right"], "when": ["beginning", "middle", "end"], "is there": ["yes", "no"]}
_REQUIRED = ("scene_id", "split", "image", "audio", "width", "height", "duration", "objects", "sounding", "events")


class _Bad(Exception):
    """A scene line that cannot become records: carries the Reject's reason and detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def read(annotations: Path, split: str | None = None) -> Iterator[Row]:
    """Rows of annotations.jsonl: per scene one grounding Record and one Record per QA pair, or one Reject.

    `split` ("train", "val", "test") keeps only the scenes of that split; a line that is not valid
    JSON has no split and is rejected under every split. Blank lines are skipped.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"the synthetic world has the splits {', '.join(SPLITS)}; got split {split!r}")
    path = Path(annotations)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {FILE} at {path}; write one with `python -m instruct_data synth --out DIR`")
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            ref = f"{path.name}:{number}"
            try:
                scene = _parse(line)
                if split is not None and scene["split"] != split:
                    continue
                records = _records(scene)
            except _Bad as bad:
                yield Row(ref, Reject(bad.reason, bad.detail))
                continue
            for record in records:
                yield Row(ref, record)


def _parse(line: str) -> dict:
    try:
        scene = json.loads(line)
    except json.JSONDecodeError as e:
        raise _Bad("bad_value", f"not JSON: {e}") from e
    if not isinstance(scene, dict):
        raise _Bad("bad_value", f"a scene is a JSON object, got {type(scene).__name__}")
    for key in _REQUIRED:
        if key not in scene:
            raise _Bad("missing_field", f"no {key!r} in scene {scene.get('scene_id', '?')}")
        if scene[key] is None:  # str(None) would make ids and paths of the text "None"
            raise _Bad("missing_field", f"{key} is null in scene {scene.get('scene_id', '?')}")
    for key in ("scene_id", "split", "image", "audio"):
        if not isinstance(scene[key], str) or not scene[key]:
            raise _Bad("bad_value", f"{key}={scene[key]!r} in scene {scene['scene_id']}; expected a non-empty string")
    if not isinstance(scene.get("caption") or "", str):
        raise _Bad("bad_value", f"caption of scene {scene['scene_id']} is {scene['caption']!r}, not a string")
    for key, kind in (("width", int), ("height", int), ("duration", (int, float))):
        if not isinstance(scene[key], kind) or isinstance(scene[key], bool) or scene[key] <= 0:
            raise _Bad("bad_value", f"{key}={scene[key]!r} in scene {scene['scene_id']}; expected a positive number")
    for key in ("objects", "events", "qa"):
        if not isinstance(scene.get(key, []), list):
            raise _Bad("bad_value", f"{key} of scene {scene['scene_id']} is {type(scene[key]).__name__}, not a list")
    return scene


def _records(scene: dict) -> list[Record]:
    sid = scene["scene_id"]
    width, height, duration = scene["width"], scene["height"], scene["duration"]
    objects = []
    for k, obj in enumerate(scene["objects"]):
        if not isinstance(obj, dict):
            raise _Bad("bad_value", f"objects[{k}] of {sid} is {obj!r}; expected an object with class and box")
        if "class" not in obj or "box" not in obj:
            raise _Bad("missing_field", f"objects[{k}] of {sid} needs 'class' and 'box', has {sorted(obj)}")
        if not isinstance(obj["class"], str) or not obj["class"]:
            raise _Bad("bad_value", f"objects[{k}].class of {sid} is {obj['class']!r}; expected a class name")
        box = _normalise(obj["box"], width, height, f"objects[{k}].box of {sid}")
        objects.append({"class": obj["class"], "box": box})
    sounding = scene["sounding"]
    if not isinstance(sounding, int) or not 0 <= sounding < len(objects):
        raise _Bad("bad_value", f"sounding={sounding!r} of {sid} is not an index into its {len(objects)} objects")
    label = objects[sounding]["class"]
    segments, distractors = [], []
    for k, e in enumerate(scene["events"]):
        if not isinstance(e, dict):
            raise _Bad("bad_value", f"events[{k}] of {sid} is {e!r}; expected an object with class, start, end, "
                                    "distractor")
        missing = [key for key in ("class", "start", "end", "distractor") if key not in e]
        if missing:
            raise _Bad("missing_field", f"events[{k}] of {sid} has no {missing[0]!r}")
        if not all(is_number(e[key]) for key in ("start", "end")):
            raise _Bad("bad_value", f"events[{k}] of {sid} has start={e['start']!r}, end={e['end']!r}; "
                                    "expected seconds")
        if not 0 <= e["start"] < e["end"]:
            raise _Bad("bad_value", f"events[{k}] of {sid} runs from {e['start']} to {e['end']} s")
        if e["end"] > duration:
            raise _Bad("segment_past_end", f"events[{k}] of {sid} ends at {e['end']} s, after the clip's {duration} s")
        if e["distractor"]:
            distractors.append(e["class"])
        elif e["class"] == label:
            segments.append([e["start"], e["end"]])
        else:
            raise _Bad("bad_value", f"events[{k}] of {sid} is {e['class']!r}, neither the sounding {label!r} "
                                    f"nor a distractor")
    if not segments:
        raise _Bad("bad_value", f"the sounding {label!r} of {sid} has no event")
    # clip_id names the soundtrack: views of one take share it, and `split` keeps a clip in one split
    media = {"clip_id": Path(scene["audio"]).stem, "image": scene["image"], "audio": scene["audio"], "duration": duration}
    caption = scene.get("caption")
    records = [Record(
        uid=sid, label=label, boxes=[objects[sounding]["box"]], segments=segments,
        visible_labels=[o["class"] for o in objects], captions=[caption] if caption else None,
        extra={"background": scene.get("background"), "snr_db": scene.get("snr_db"), "objects": objects,
               "distractors": distractors}, **media)]
    for k, qa in enumerate(scene.get("qa", [])):
        if not isinstance(qa, dict):
            raise _Bad("bad_value", f"qa[{k}] of {sid} is {qa!r}; expected an object with question, answer, type")
        if not qa.get("question") or not qa.get("answer"):
            raise _Bad("empty_answer" if qa.get("question") else "missing_field",
                       f"qa[{k}] of {sid} needs a question and an answer, has {qa}")
        if not all(isinstance(qa[key], str) for key in ("question", "answer")):
            raise _Bad("bad_value", f"qa[{k}] of {sid} needs a question and an answer as strings, has {qa}")
        options = OPTIONS.get(qa.get("type"))
        if qa.get("type") == "which":
            options = [f"the {o['class']}" for o in objects]
        records.append(Record(uid=f"{sid}/q{k}", question=qa["question"], answer=qa["answer"],
                              question_type=qa.get("type"), extra={"options": options} if options else {}, **media))
    return records


def _normalise(box: list, width: int, height: int, where: str) -> list[float]:
    """Pixel [x1, y1, x2, y2] (x2/y2 exclusive) → [0, 1] coordinates, checked against the image."""
    if not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box):
        raise _Bad("bad_value", f"{where} is {box!r}; expected [x1, y1, x2, y2] in pixels")
    x1, y1, x2, y2 = box
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise _Bad("box_outside_image", f"{where} {box} leaves the {width}x{height} image")
    if x1 >= x2 or y1 >= y2:
        raise _Bad("bad_value", f"{where} {box} is empty")
    return [x1 / width, y1 / height, x2 / width, y2 / height]
