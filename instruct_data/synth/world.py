"""The synthetic audio-visual world: seeded scenes of coloured shapes, one of which sounds, with exact
ground truth (its box, its time segments), a caption and closed-set QA.

    python -m instruct_data synth --out data/synth --n 5000 --seed 0   # generate, then convert

`generate(out_dir, n, seed)` writes, under out_dir, `images/<scene_id>.png` (224×224 RGB),
`audio/<scene_id>.flac` (10 s, 16 kHz mono, 16 bit; every signature is below 6 kHz) and
`annotations.jsonl`, one scene per line, which `instruct_data/sources/synth.py` reads:

    {"scene_id": "scene_000001", "split": "val", "image": "images/scene_000001.png",
     "audio": "audio/scene_000001.flac", "width": 224, "height": 224, "duration": 10.0,
     "objects": [{"class": "blue square", "box": [44, 54, 126, 136]}, ...],   # pixels, x2/y2 exclusive
     "sounding": 1,                                                          # index into objects
     "events": [{"class": "red square", "start": 3.1, "end": 5.5, "distractor": false}, ...],
     "snr_db": 11.6, "noise": "white", "background": "gradient",
     "caption": "A blue square, a red square and ...", "qa": [{"question": ..., "answer": ..., "type": "which"}]}

Scene i depends only on (seed, i, knobs): the output is byte-identical for any worker count.
With `views=K`, scenes come in takes of K, like K frames of one video: a take shares its split, its
classes, which one sounds, every event and so one soundtrack (`audio/<first scene of the take>.flac`);
each view draws its own background, layout and wording. Pictures cost milliseconds and sounds tens of
them to encode, so views multiply the pictures a model learns to read from at little cost.
A class is a colour and a shape ("red square"). Colour sets the pitch and shape the timbre and rhythm
(see `sound.py`), so the class can be told from sound alone. Exactly one object in the picture sounds,
in 1–2 segments; distractor events come from classes not in the picture; background noise sits at
`snr_db` below the sounding object's power (its mean square over its own segments).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm import tqdm

from instruct_data.synth import image, sound

SHAPES = ("square", "circle", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow")
CLASSES = tuple(f"{colour} {shape}" for shape in SHAPES for colour in COLOURS)

DURATION_S = 10.0
TICK_S = 0.1  # event times lie on this grid, so the one-decimal grounding text states them exactly
SOUNDING_SEGMENTS = (1, 2)
SEGMENT_TICKS = (10, 40)  # 1–4 s
GAP_TICKS = 5  # at least 0.5 s of quiet between two segments of the sounding object
OBJECT_SIZE_PX = (36.0, 96.0)  # nominal size (circumscribed circle): tight boxes come out ~30–90 px
OBJECT_GAP_PX = 2  # boxes never touch
WHERE_MARGIN_PX = 4  # box centres keep clear of the left/center/right thirds' borders
LEVEL_DBFS = (-22.0, -16.0)  # RMS of the sounding object's steady tone
DISTRACTOR_GAIN_DB = (-12.0, 0.0)  # relative to the sounding object; below FAINT_DB it is "faint"
FAINT_DB = -6.0
NOISY_SNR_DB = 15.0  # captions mention the noise below this SNR
PNG_LEVEL = 3  # zlib level: a third of level 6's time on noisy backgrounds, within a few KB of its size


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Knobs of `generate`: inclusive (low, high) ranges, and train/val/test fractions."""

    objects: tuple[int, int] = (1, 3)
    distractors: tuple[int, int] = (0, 2)
    snr_db: tuple[float, float] = (10.0, 30.0)
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    views: int = 1  # pictures per soundtrack

    def __post_init__(self):
        if self.views < 1:
            raise ValueError(f"views={self.views}; pass the number of pictures per soundtrack (>= 1)")
        lo, hi = self.objects
        if not 1 <= lo <= hi <= 5:
            raise ValueError(f"objects={self.objects}; pass (low, high) with 1 <= low <= high <= 5")
        lo, hi = self.distractors
        if not 0 <= lo <= hi <= len(CLASSES) - self.objects[1]:
            left = len(CLASSES) - self.objects[1]
            raise ValueError(f"distractors={self.distractors}; pass (low, high) with 0 <= low <= high <= {left} "
                             f"(the classes left once the picture holds {self.objects[1]})")
        if not (np.isfinite(self.snr_db).all() and self.snr_db[0] <= self.snr_db[1]):
            raise ValueError(f"snr_db={self.snr_db}; pass finite (low, high) with low <= high")
        if len(self.splits) != 3 or min(self.splits) < 0 or not np.isclose(sum(self.splits), 1.0):
            raise ValueError(f"splits={self.splits}; pass three non-negative train/val/test fractions summing to 1")


@dataclasses.dataclass(frozen=True)
class SceneObject:
    cls: str
    box: tuple[int, int, int, int]  # tight pixel box [x1, y1, x2, y2), x2/y2 exclusive
    mask: np.ndarray  # (y2 - y1, x2 - x1) bool: the shape's pixels inside its box
    rgb: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Event:
    cls: str
    start: int  # ticks of TICK_S
    end: int
    distractor: bool
    gain_db: float  # relative to the sounding object's level
    phase: float


@dataclasses.dataclass(frozen=True)
class Scene:
    scene_id: str
    audio_id: str  # the scene whose soundtrack it shares: itself, or its take's first view
    split: str
    background: image.Background
    objects: list[SceneObject]
    sounding: int  # index into objects
    events: list[Event]  # sorted by start
    snr_db: float
    level_dbfs: float
    noise: str  # colour of the background noise
    noise_seed: int
    caption: str
    qa: list[dict]

    def annotation(self) -> dict:
        """The scene's line in annotations.jsonl."""
        return {
            "scene_id": self.scene_id,
            "split": self.split,
            "image": f"images/{self.scene_id}.png",
            "audio": f"audio/{self.audio_id}.flac",
            "width": image.SIZE,
            "height": image.SIZE,
            "duration": DURATION_S,
            "objects": [{"class": o.cls, "box": list(o.box)} for o in self.objects],
            "sounding": self.sounding,
            "events": [{"class": e.cls, "start": _seconds(e.start), "end": _seconds(e.end),
                        "distractor": e.distractor} for e in self.events],
            "snr_db": self.snr_db,
            "noise": self.noise,
            "background": self.background.kind,
            "caption": self.caption,
            "qa": self.qa,
        }


def generate(out_dir: Path, n: int, seed: int = 0, *, objects: tuple[int, int] = (1, 3),
             distractors: tuple[int, int] = (0, 2), snr_db: tuple[float, float] = (10.0, 30.0),
             splits: tuple[float, float, float] = (0.8, 0.1, 0.1), views: int = 1, workers: int | None = None) -> Path:
    """Write n scenes (annotations.jsonl, images/, audio/) under out_dir; return the annotations path."""
    if n < 0:
        raise ValueError(f"n={n}; pass the number of scenes to write (>= 0)")
    if seed < 0:
        raise ValueError(f"seed={seed}; the world's generators take a seed >= 0")
    config = WorldConfig(tuple(objects), tuple(distractors), tuple(snr_db), tuple(splits), views)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    path = out_dir / "annotations.jsonl"
    partial_path = path.with_suffix(".jsonl.partial")  # a crashed run leaves no annotations.jsonl behind
    job = partial(write_scene, out_dir, seed, config)
    try:
        with open(partial_path, "w") as f:
            for annotation in tqdm(_run(job, n, workers or os.cpu_count() or 1), total=n, unit="scene",
                                   desc="synth world"):
                f.write(json.dumps(annotation) + "\n")
    except BaseException:
        partial_path.unlink()
        raise
    partial_path.replace(path)
    return path


def _run(job, n: int, workers: int) -> Iterator[dict]:
    """job(i) for i in range(n), in order, across `workers` processes."""
    if workers == 1 or n < 2:
        yield from map(job, range(n))
        return
    with multiprocessing.get_context().Pool(min(workers, n)) as pool:
        yield from pool.imap(job, range(n), chunksize=8)


def write_scene(out_dir: Path, seed: int, config: WorldConfig, index: int) -> dict:
    """Sample scene `index`, write its PNG (and the FLAC of its take, from the take's first view) under
    out_dir, return its annotation."""
    scene = sample_scene(seed, index, config)
    render_image(scene).save(out_dir / "images" / f"{scene.scene_id}.png", compress_level=PNG_LEVEL)
    if scene.audio_id == scene.scene_id:
        sf.write(out_dir / "audio" / f"{scene.audio_id}.flac", render_audio(scene), sound.SAMPLE_RATE,
                 format="FLAC", subtype="PCM_16")
    return scene.annotation()


def sample_scene(seed: int, index: int, config: WorldConfig = WorldConfig()) -> Scene:
    """Scene `index` of the world `seed`: a pure function of (seed, index, config). What a take shares is
    drawn from the take's generator, the rest from the view's; with one view per take they are one
    generator, drawn in the same order as before views existed, so such worlds are unchanged."""
    first = index - index % config.views
    take = np.random.default_rng([seed, first])
    view = take if config.views == 1 else np.random.default_rng([seed, first, index % config.views])
    # Drawn first and always once, so the split fractions change which split a scene is in, not the scene.
    u = take.random()
    split = "train" if u < config.splits[0] else "val" if u < config.splits[0] + config.splits[1] else "test"
    background = image.sample_background(view)
    classes = [CLASSES[k] for k in take.choice(len(CLASSES), take.integers(config.objects[0], config.objects[1] + 1),
                                               replace=False)]
    objects = _place(classes, view)
    sounding = int(take.integers(len(objects)))
    events = [Event(objects[sounding].cls, start, end, False, 0.0, float(take.uniform(0, 2 * np.pi)))
              for start, end in _segments(int(take.integers(SOUNDING_SEGMENTS[0], SOUNDING_SEGMENTS[1] + 1)), take)]
    absent = [c for c in CLASSES if c not in classes]
    for k in take.choice(len(absent), take.integers(config.distractors[0], config.distractors[1] + 1), replace=False):
        (start, end), = _segments(1, take)
        events.append(Event(absent[k], start, end, True, round(float(take.uniform(*DISTRACTOR_GAIN_DB)), 1),
                            float(take.uniform(0, 2 * np.pi))))
    events.sort(key=lambda e: (e.start, e.distractor))
    scene = Scene(
        scene_id=f"scene_{index:06d}", audio_id=f"scene_{first:06d}", split=split, background=background,
        objects=objects, sounding=sounding, events=events, snr_db=round(float(take.uniform(*config.snr_db)), 1),
        level_dbfs=float(take.uniform(*LEVEL_DBFS)), noise=str(take.choice(sound.NOISE_COLOURS)),
        noise_seed=int(take.integers(2**31)), caption="", qa=[])
    return dataclasses.replace(scene, caption=caption(scene, view), qa=questions(scene, view))


def _place(classes: list[str], rng: np.random.Generator) -> list[SceneObject]:
    """Shapes at random non-touching positions, shrinking one that does not fit after a few tries."""
    placed: list[SceneObject] = []
    for cls in classes:
        colour, shape = cls.split()
        size = rng.uniform(*OBJECT_SIZE_PX)
        angle = rng.uniform(-0.35, 0.35) if shape == "square" else rng.uniform(0, 2 * np.pi)
        rgb = image.fill_colour(colour, rng)
        for attempt in range(1000):
            if attempt % 50 == 0:
                mask = image.shape_mask(shape, size * 0.85 ** (attempt // 50), angle)
            h, w = mask.shape
            x, y = int(rng.integers(0, image.SIZE - w + 1)), int(rng.integers(0, image.SIZE - h + 1))
            box = (x, y, x + w, y + h)
            if _fits(box, placed):
                placed.append(SceneObject(cls, box, mask, rgb))
                break
        else:
            raise RuntimeError(f"could not place {len(classes)} objects in {image.SIZE} px; lower the objects knob")
    return placed


def _fits(box: tuple[int, int, int, int], placed: list[SceneObject]) -> bool:
    centre = (box[0] + box[2]) / 2
    if any(abs(centre - image.SIZE * k / 3) < WHERE_MARGIN_PX for k in (1, 2)):
        return False
    g = OBJECT_GAP_PX
    return all(box[2] + g <= o.box[0] or o.box[2] + g <= box[0] or box[3] + g <= o.box[1] or o.box[3] + g <= box[1]
               for o in placed)


def _segments(count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """`count` non-overlapping (start, end) tick pairs inside the clip, GAP_TICKS apart at least."""
    lengths = rng.integers(SEGMENT_TICKS[0], SEGMENT_TICKS[1] + 1, size=count)
    total = round(DURATION_S / TICK_S)
    slack = total - int(lengths.sum()) - GAP_TICKS * (count - 1)
    offsets = np.sort(rng.integers(0, slack + 1, size=count))
    starts = offsets + np.concatenate([[0], np.cumsum(lengths[:-1] + GAP_TICKS)])
    return [(int(s), int(s + n)) for s, n in zip(starts, lengths)]


def _seconds(ticks: int) -> float:
    return round(ticks * TICK_S, 1)


def render_image(scene: Scene) -> Image.Image:
    """The scene's 224×224 RGB picture."""
    return image.render(scene.background, [(o.mask, o.box[:2], o.rgb) for o in scene.objects])


def render_audio(scene: Scene) -> np.ndarray:
    """(DURATION_S · 16 kHz,) float32 mono mix: sounding events, distractors, noise at scene.snr_db."""
    n = round(DURATION_S * sound.SAMPLE_RATE)
    signal, others = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    active = np.zeros(n, dtype=bool)
    rms = 10 ** (scene.level_dbfs / 20)
    for e in scene.events:
        colour, shape = e.cls.split()
        a, b = (round(_seconds(t) * sound.SAMPLE_RATE) for t in (e.start, e.end))
        wave = sound.event(colour, shape, b - a, rms * 10 ** (e.gain_db / 20), e.phase)
        if e.distractor:
            others[a:b] += wave
        else:
            signal[a:b] += wave
            active[a:b] = True
    power = np.mean(signal[active] ** 2, dtype=np.float64)
    noise = sound.noise(scene.noise, n, np.random.default_rng(scene.noise_seed))
    mix = signal + others + noise * np.float32(np.sqrt(power / 10 ** (scene.snr_db / 10)))
    peak = np.abs(mix).max()
    return mix * np.float32(0.99 / peak) if peak > 0.99 else mix  # scaling the whole mix keeps the SNR


# --- text: caption and QA --------------------------------------------------------------------------

_BACKGROUND_PHRASES = {"gradient": "a smooth gradient", "stripes": "a striped background",
                       "checkerboard": "a checkered background", "noise": "a mottled background",
                       "rings": "a background of rings"}
_NOISE_PHRASES = {"white": "a loud hiss", "pink": "loud static", "brown": "a loud rumble"}
_TIMES = {1: "once", 2: "twice"}
_UNSEEN = ("an unseen", "an off-screen", "a hidden")


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One sentence: what is in the picture, which object sounds and how often, what else is heard."""
    source = scene.objects[scene.sounding].cls
    others = [o.cls for o in scene.objects if o.cls != source]
    things = _listing([f"a {o.cls}" for o in scene.objects])
    bg = _BACKGROUND_PHRASES[scene.background.kind]
    sounding = [e for e in scene.events if not e.distractor]
    does = f"{sound.SIGNATURES[source.split()[1]].verb} {_TIMES[len(sounding)]}"
    unseen = _UNSEEN[int(rng.integers(len(_UNSEEN)))]
    heard = [f"the {'faint ' if e.gain_db < FAINT_DB else ''}{sound.SIGNATURES[e.cls.split()[1]].noun} "
             f"of {unseen} {e.cls}" for e in scene.events if e.distractor]
    tail = f", with {_listing(heard)}" if heard else ""
    if scene.snr_db < NOISY_SNR_DB:
        tail += f", over {_NOISE_PHRASES[scene.noise]}"
    template = int(rng.integers(3))
    if template == 0:
        text = f"{things} on {bg}; the {source} {does}{tail}."
    elif template == 1:
        text = f"on {bg} there {'is' if len(scene.objects) == 1 else 'are'} {things}, and the {source} {does}{tail}."
    else:
        company = f"next to {_listing([f'a {c}' for c in others])}" if others else "alone"
        text = f"the {source} {does}, {company} on {bg}{tail}."
    return text[0].upper() + text[1:]


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def where(box: tuple[int, int, int, int] | list[int], width: int) -> str:
    """"left", "center" or "right": which third of the picture holds the box centre."""
    centre = (box[0] + box[2]) / 2
    return ("left", "center", "right")[min(int(3 * centre // width), 2)]


def when(time_s: float, duration_s: float) -> str:
    """"beginning", "middle" or "end": which third of the clip a time falls in (the clip's end is "end")."""
    return ("beginning", "middle", "end")[min(int(3 * time_s // duration_s), 2)]


def questions(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """3–5 closed-set question/answer pairs with exact answers."""
    source = scene.objects[scene.sounding]
    sounding = [e for e in scene.events if not e.distractor]
    classes = [o.cls for o in scene.objects]
    if rng.random() < 0.5:
        asked, present = classes[int(rng.integers(len(classes)))], "yes"
    else:
        absent = [c for c in CLASSES if c not in classes]
        asked, present = absent[int(rng.integers(len(absent)))], "no"
    stop_or_start = rng.random()
    pool = [  # (type, two phrasings, answer)
        ("which", ("Which object is making the sound?", "Which object in the picture makes this sound?"),
         f"the {source.cls}"),
        ("how many", ("How many objects are in the picture?", "How many shapes can you see?"),
         str(len(scene.objects))),
        # "the sounding object", not "the sound": distractors start too
        ("how many", ("How many times does the sounding object start?",
                      "How many times does the sounding object start sounding?"), str(len(sounding))),
        ("where", ("Where is the sounding object?",
                   "Is the sounding object on the left, in the center or on the right?"),
         where(source.box, image.SIZE)),
        # Onsets lean early and offsets late, so asking either at random keeps the answers balanced.
        ("when", ("When does the sounding object start?",
                  "Does the sounding object start at the beginning, in the middle or at the end?"),
         when(_seconds(sounding[0].start), DURATION_S)) if stop_or_start < 0.5 else
        ("when", ("When does the sounding object finally stop?",
                  "Does the sounding object finally stop at the beginning, in the middle or at the end?"),
         when(_seconds(sounding[-1].end), DURATION_S)),
        ("is there", (f"Is there a {asked} in the picture?", f"Can you see a {asked}?"), present),
    ]
    chosen = np.sort(rng.choice(len(pool), int(rng.integers(3, 6)), replace=False))
    return [{"question": pool[k][1][int(rng.integers(2))], "answer": pool[k][2], "type": pool[k][0]} for k in chosen]
