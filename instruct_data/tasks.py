"""Records → instruction samples: one builder per MeerkatBench task.

A builder returns None when a record lacks what its task needs, so a source can feed several tasks
and each record yields the samples it supports. AVFC negatives come from the other records of the
same run (`Pool`): another object's label, another clip's image, a segment or box that does not
overlap the truth — so false statements are as fluent as true ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from instruct_data import templates
from instruct_data.sources.base import Record
from meerkat.grounding import box_iou, format_box, format_boxes, format_segment, format_segments, segment_iou


class Pool:
    """What AVFC negatives are drawn from: every record of the run, plus a truth alternator per
    fact type so true and false statements stay balanced."""

    def __init__(self, records: Sequence[Record], rng: random.Random):
        self.labels = sorted({r.label for r in records if r.label})
        self.with_image = [r for r in records if r.image and r.label]
        self.segments = [s for r in records for s in (r.segments or [])]
        self.boxes = [b for r in records for b in (r.boxes or [])]
        self._next_truth = {t: rng.random() < 0.5 for t in (1, 2, 3, 4)}
        self._next_type = 0

    def truth(self, fact_type: int) -> bool:
        value = self._next_truth[fact_type]
        self._next_truth[fact_type] = not value
        return value

    def fact_type(self, applicable: list[int]) -> int:
        """Round-robin over the fact types a record supports."""
        self._next_type += 1
        return applicable[self._next_type % len(applicable)]


def _media_prefix(image: str | None, audio: str | None) -> str:
    return ("<image>\n" if image else "") + ("<audio>\n" if audio else "")


def _sample(record: Record, task: str, image: str | None, question: str, answer: str, target: dict,
            grounding: dict | None = None) -> dict:
    return {
        "id": "", "source": "", "task": task, "clip_id": record.clip_id,
        "image": image, "audio": record.audio,
        "conversations": [
            {"role": "user", "content": _media_prefix(image, record.audio) + question},
            {"role": "assistant", "content": answer},
        ],
        "target": target,
        "grounding": grounding or {},
    }


def arig(record: Record, pool: Pool, rng: random.Random) -> dict | None:
    if not (record.image and record.audio and record.boxes):
        return None
    boxes = format_boxes(record.boxes)
    answer = (templates.answer("arig", rng, label=record.label, boxes=boxes) if record.label
              else templates.answer("arig_nolabel", rng, boxes=boxes))
    return _sample(record, "arig", record.image, templates.instruction("arig", rng), answer, {"boxes": record.boxes},
                   grounding={"boxes": record.boxes})


def igatl(record: Record, pool: Pool, rng: random.Random) -> dict | None:
    if not (record.image and record.audio and record.segments and record.duration):
        return None
    segments = format_segments(record.segments)
    answer = (templates.answer("igatl", rng, label=record.label, segments=segments) if record.label
              else templates.answer("igatl_nolabel", rng, segments=segments))
    target = {"segments": record.segments, "duration": record.duration}
    return _sample(record, "igatl", record.image, templates.instruction("igatl", rng), answer, target,
                   grounding={"boxes": record.boxes} if record.boxes else None)


def avfc(record: Record, pool: Pool, rng: random.Random) -> dict | None:
    """One true-or-false statement of a fact type the record supports (1 object makes the sound,
    2 the sounding object is in the image, 3 it sounds within a segment, 4 the audio matches the box),
    answered with the facts it is checked against, then the verdict (templates.AVFC_REASONS)."""
    if not (record.image and record.audio and record.label):
        return None
    applicable = [1] + [2] * bool(record.boxes or record.visible_labels) + [3] * bool(record.segments) + [4] * bool(record.boxes)
    fact_type = pool.fact_type(applicable)
    truth, negative = pool.truth(fact_type), None
    if not truth:  # a false statement of this type, else of another type, else (no negative in the run) a true one
        for candidate in [fact_type] + [t for t in applicable if t != fact_type]:
            negative = _NEGATIVES[candidate](record, pool, rng)
            if negative is not None:
                fact_type = candidate
                break
        truth = negative is None
    shown, fields = negative if fact_type == 2 and negative else record, {}
    if fact_type in (1, 2, 3):
        fields["label"] = negative if fact_type == 1 and negative else record.label
    if fact_type == 3:
        fields["segment"] = format_segment(negative or rng.choice(record.segments))
    if fact_type == 4:
        fields["box"] = format_box(negative or record.boxes[0])
    statement = templates.avfc_statement(fact_type, rng, **fields)
    reason = templates.avfc_reason(fact_type, rng, label=record.label, objects=_objects(shown),
                                   segments=format_segments(record.segments or []), boxes=format_boxes(record.boxes or []))
    question = templates.instruction("avfc", rng, statement=statement)
    answer = templates.answer("avfc_true" if truth else "avfc_false", rng, reason=reason)
    return _sample(record, "avfc", shown.image, question, answer, {"truth": truth, "fact_type": fact_type, "statement": statement},
                   grounding={"boxes": record.boxes} if truth and record.boxes else None)


def _objects(record: Record) -> str:
    """What a record's picture holds, in words: "the dog", "the dog and the cat", "the dog, the cat and the car"."""
    names = [f"the {label}" for label in dict.fromkeys(record.visible_labels or [record.label])]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _draw(items: Sequence, accept: Callable, rng: random.Random, tries: int = 64):
    """A random item that `accept`s, by rejection sampling: O(1) per record however large the run."""
    for _ in range(tries if items else 0):
        item = rng.choice(items)
        if accept(item):
            return item
    return None


def _other_label(record: Record, pool: Pool, rng: random.Random) -> str | None:
    """A class neither seen nor heard: a distractor is audible, so "the sound is made by <it>" is not plainly false."""
    excluded = {record.label, *(record.visible_labels or []), *record.extra.get("distractors", [])}
    return _draw(pool.labels, lambda label: label not in excluded, rng)


def _other_image(record: Record, pool: Pool, rng: random.Random) -> Record | None:
    """Another clip's record whose image does not show this record's sounding object."""
    return _draw(pool.with_image, lambda r: r.clip_id != record.clip_id and r.label != record.label
                 and record.label not in (r.visible_labels or []), rng)


def _other_segment(record: Record, pool: Pool, rng: random.Random) -> list[float] | None:
    return _draw(pool.segments, lambda s: s[1] <= record.duration and all(segment_iou(s, t) == 0 for t in record.segments), rng)


def _other_box(record: Record, pool: Pool, rng: random.Random) -> list[float] | None:
    """Preferably another object's box in the same image, else a box from another clip."""
    own = [o["box"] for o in record.extra.get("objects", []) if o.get("class") != record.label]
    return rng.choice(own) if own else _draw(pool.boxes, lambda b: all(box_iou(b, t) < 0.1 for t in record.boxes), rng)


_NEGATIVES = {1: _other_label, 2: _other_image, 3: _other_segment, 4: _other_box}


def avqa(record: Record, pool: Pool, rng: random.Random) -> dict | None:
    if not (record.question and record.answer):
        return None
    target = {"answer": record.answer, "question_type": record.question_type or "",
              "options": record.extra.get("options", [])}
    return _sample(record, "avqa", record.image, templates.instruction("avqa", rng, question=record.question),
                   templates.answer("avqa", rng, answer=record.answer), target)


def _caption(task: str, needs_image: bool) -> Callable[[Record, Pool, random.Random], dict | None]:
    def build(record: Record, pool: Pool, rng: random.Random) -> dict | None:
        if not (record.captions and record.audio and (record.image or not needs_image)):
            return None
        return _sample(record, task, record.image if needs_image else None, templates.instruction(task, rng),
                       templates.answer(task, rng, caption=record.captions[0]), {"captions": record.captions})
    return build


def classify(record: Record, pool: Pool, rng: random.Random) -> dict | None:
    if not (record.label and record.audio):
        return None
    return _sample(record, "classify", record.image, templates.instruction("classify", rng),
                   templates.answer("classify", rng, label=record.label), {"label": record.label})


BUILDERS: dict[str, Callable[[Record, Pool, random.Random], dict | None]] = {
    "arig": arig, "igatl": igatl, "avfc": avfc, "avqa": avqa,
    "avc": _caption("avc", needs_image=True), "caption_audio": _caption("caption_audio", needs_image=False),
    "classify": classify,
}


def build_samples(source: str, record: Record, tasks: Sequence[str], pool: Pool, rng: random.Random) -> list[dict]:
    """Every sample the record supports among `tasks`, with ids "<source>/<uid>/<task>"."""
    samples = []
    for task in tasks:
        sample = BUILDERS[task](record, pool, rng)
        if sample is not None:
            sample["id"], sample["source"] = f"{source}/{record.uid}/{task}", source
            samples.append(sample)
    return samples
