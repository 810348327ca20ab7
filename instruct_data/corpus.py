"""The text the tiny/small presets' tokenizer is trained on (meerkat/assets/tokenizer_corpus.txt).

    python -m instruct_data.corpus > meerkat/assets/tokenizer_corpus.txt

Llama's tokenizer has whole-word pieces for ordinary English; a sentencepiece model trained on a few
lines has mostly characters, which made the demo's prompts ~1.5× longer (the system prompt alone 92
pieces instead of 54) and training steps ~1.3× slower. So the corpus holds what these models
read: the chat system prompt, every instruction/answer/statement template filled with example values,
and captions and questions of a small procedural world made with its own seed (not a demo world).
`tests/test_tokenizer.py` checks that the bundled file equals this output.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from instruct_data import templates
from instruct_data.mixture import read_jsonl
from instruct_data.synth import world
from meerkat.prompt import DEFAULT_SYSTEM

GENERIC = """\
[INST] <<SYS>> You are Meerkat, an assistant that sees an image and hears audio. Answer precisely. <</SYS>>
Which object in the picture makes this sound? Give its box. [/INST]
The dog at [0.12, 0.30, 0.56, 0.80] is barking.
The red square at [0.05, 0.10, 0.45, 0.50] makes the beeping sound.
The blue circle at [0.40, 0.25, 0.95, 0.70] is humming.
The green triangle at [0.33, 0.41, 0.67, 0.99] whistles.
The yellow star at [0.20, 0.60, 0.30, 0.70] rings like a bell.
When does the pictured object make its sound? Give the time segments in seconds.
The sound occurs from [1.0, 3.5] and from [6.2, 8.9] seconds.
It is heard during [0.0, 2.4], [4.8, 7.1] seconds.
Is the following statement true or false? The piano makes the sound. Answer yes or no.
True. False. Yes. No. The statement is true. The statement is false.
The sounding object is in the image. The sounding object is not in the image.
The audio matches the boxed object. The audio does not match the boxed object.
How many instruments are playing? Which instrument sounds first? Is the guitar louder than the violin?
Two instruments are playing. The violin sounds first. The cello is on the left.
Describe what you see and hear. Write a caption for this clip.
A man plays an acoustic guitar while a woman sings in a small room.
A car engine roars as it drives past people talking on a busy street.
Birds chirp in the trees while water flows in a stream nearby.
A baby cries and a woman speaks softly; a television plays in the background.
A crowd cheers in a stadium as a whistle blows.
Rain falls on a tin roof and thunder rumbles in the distance.
A cat meows, a phone rings, a door closes, footsteps on a wooden floor.
square circle triangle star hexagon cross diamond ring red green blue yellow orange purple white black
dog cat bird car train plane helicopter piano guitar violin cello drum flute trumpet saxophone siren bell
speech music noise silence tone chirp beep buzz hum whistle click knock clap bark meow engine wind water
left right top bottom middle center small large near far loud quiet high low fast slow first second
0 1 2 3 4 5 6 7 8 9 0.0 0.5 1.0 0.25 0.75 10.0 [ ] , . ? ! : ; ( ) - " '
What is making the sound? Where is it? When does it happen? What do you hear? What do you see?
The answer is yes. The answer is no. There are three objects: a red square, a blue circle and a green star.
"""  # everyday captioning/QA English and the chat markup
LABELS = (*world.CLASSES, "dog", "man speaking", "car engine", "violin", "bird")
SCENES, SEED = 60, 12345


def _example_fields(rng: random.Random) -> dict[str, str]:
    """A value for every field a template may name."""
    def box() -> str:
        return "[" + ", ".join(f"{rng.random():.2f}" for _ in range(4)) + "]"

    def segment() -> str:
        return f"[{rng.uniform(0, 5):.1f}, {rng.uniform(5, 10):.1f}]"

    label, other = rng.choice(LABELS), rng.choice(LABELS)
    return dict(label=label, boxes=box(), box=box(), segments=segment(), segment=segment(),
                statement=f"The {label} is heard.", question=f"Is there a {label} in the picture?",
                answer=rng.choice(["yes", "no", "2", "left", label]), caption=f"A {label} makes a sound.",
                objects=f"the {label} and the {other}", reason=f"The sound is made by the {other}.")


def corpus_lines() -> list[str]:
    rng = random.Random(0)
    lines = [*GENERIC.splitlines(), DEFAULT_SYSTEM]
    for group in (templates.INSTRUCTIONS, templates.ANSWERS, templates.AVFC_STATEMENTS, templates.AVFC_REASONS):
        lines += [phrasing.format(**_example_fields(rng)) for phrasings in group.values() for phrasing in phrasings]
    with tempfile.TemporaryDirectory() as tmp:
        world.generate(Path(tmp), SCENES, seed=SEED, workers=1)
        for scene in read_jsonl(Path(tmp) / "annotations.jsonl"):
            lines += [scene["caption"], *(f"{qa['question']} {qa['answer']}" for qa in scene["qa"])]
    return lines


if __name__ == "__main__":
    print("\n".join(corpus_lines()))
