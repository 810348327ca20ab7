"""Raw model answers → the structured prediction each task is scored on.

The answer wrappers the training data uses ("The answer is …", "Description: …") come from
`instruct_data.templates`, so eval strips exactly what the model was taught to add. A prediction of
None means the answer could not be parsed: it scores zero and is counted, never dropped.
"""

from __future__ import annotations

import re
import string

from eval import TASKS
from instruct_data import templates
from meerkat.grounding import parse_boxes, parse_segments, parse_verdict

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def _prefixes(phrasings: tuple[str, ...], field: str) -> tuple[str, ...]:
    """The lower-cased text before `{field}` in each phrasing, longest first."""
    found = {p.split("{" + field + "}")[0].strip().lower() for p in phrasings}
    return tuple(sorted((p for p in found if p), key=len, reverse=True))


_ANSWER_PREFIXES = _prefixes(templates.AVQA_ANSWERS, "answer")
_CAPTION_PREFIXES = _prefixes(templates.AVC_ANSWERS + templates.CAPTION_AUDIO_ANSWERS, "caption")


def _strip_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    text = text.strip()
    for prefix in prefixes:
        if text.lower().startswith(prefix):
            return text[len(prefix):].strip()
    return text


def normalize_answer(text: str) -> str:
    """VQA-style normalisation: wrapper removed, lower case, no punctuation or articles, numbers as digits."""
    text = _strip_prefix(text, _ANSWER_PREFIXES).lower()
    text = text.translate(str.maketrans({p: " " for p in string.punctuation}))
    text = _ARTICLES.sub(" ", text)
    return " ".join(_NUMBERS.get(word, word) for word in text.split())


def caption_text(text: str) -> str:
    return _strip_prefix(text, _CAPTION_PREFIXES)


def parse(task: str, text: str, target: dict):
    """The structured prediction of `task` in `text`: a box, segments, a truth value, an answer or a
    caption; None when the answer states none."""
    if task == "arig":
        boxes = parse_boxes(text).values
        return boxes[0] if boxes else None
    if task == "igatl":
        return parse_segments(text, duration=target.get("duration")).values or None
    if task == "avfc":
        return parse_verdict(text)
    if task == "avqa":
        return normalize_answer(text) or None
    if task == "avc":
        return caption_text(text) or None
    raise ValueError(f"no MeerkatBench task {task!r}; tasks are {', '.join(TASKS)}")
