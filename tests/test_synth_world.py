"""The synthetic world: deterministic, with boxes, segments, knobs and QA that match its pixels and samples."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from instruct_data.synth import CLASSES, WorldConfig, generate
from instruct_data.synth import image, sound
from instruct_data.synth.world import sample_scene, when, where

N = 12
FRAME_S = 0.1


def _scenes(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]


def _media_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate(out, N, seed=0, workers=2)
    return out


def test_generate_returns_the_annotations_path_and_writes_every_scene(world, tmp_path):
    assert generate(tmp_path, 0) == tmp_path / "annotations.jsonl"
    scenes = _scenes(world)
    assert [s["scene_id"] for s in scenes] == [f"scene_{i:06d}" for i in range(N)]
    for s in scenes:
        with Image.open(world / s["image"]) as png:
            assert (png.size, png.mode) == ((224, 224), "RGB")
        info = sf.info(world / s["audio"])
        assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == \
            ("FLAC", "PCM_16", 16_000, 1, 160_000)


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(world, tmp_path):
    generate(tmp_path, N, seed=0, workers=1)
    assert _media_bytes(tmp_path) == _media_bytes(world)


def test_different_seed_gives_a_different_world(world, tmp_path):
    generate(tmp_path, N, seed=1, workers=1)
    assert _scenes(tmp_path) != _scenes(world)
    assert (tmp_path / "images/scene_000000.png").read_bytes() != (world / "images/scene_000000.png").read_bytes()
    assert (tmp_path / "audio/scene_000000.flac").read_bytes() != (world / "audio/scene_000000.flac").read_bytes()


def test_each_box_is_the_tight_box_of_its_drawn_shape(world):
    for index, s in enumerate(_scenes(world)):
        pixels = np.asarray(Image.open(world / s["image"]))
        background = image.render_background(sample_scene(0, index).background)
        drawn = np.any(pixels != background, axis=-1)  # (H, W) pixels some shape painted
        covered = np.zeros_like(drawn)
        for obj in s["objects"]:
            x1, y1, x2, y2 = obj["box"]
            covered[y1:y2, x1:x2] = True
            inside = drawn[y1:y2, x1:x2]
            # tight: the shape touches every side of its box
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any(), obj
            assert 20 <= max(x2 - x1, y2 - y1) <= 100, obj
        assert not (drawn & ~covered).any(), f"{s['scene_id']}: shape pixels outside every box"


def test_shapes_are_saturated_and_backgrounds_muted_so_no_shape_pixel_can_pass_for_background(world):
    for s in _scenes(world):
        pixels = np.asarray(Image.open(world / s["image"])).astype(int)
        spread = pixels.max(-1) - pixels.min(-1)  # (H, W) how far from grey
        assert not ((spread > image.BACKGROUND_SPREAD) & (spread < image.FILL_MIN_SPREAD)).any()
        in_boxes = np.zeros(spread.shape, dtype=bool)
        for obj in s["objects"]:
            x1, y1, x2, y2 = obj["box"]
            in_boxes[y1:y2, x1:x2] = True
        assert (spread[~in_boxes] <= image.BACKGROUND_SPREAD).all()


def _band_energy(wave: np.ndarray, f0: float) -> np.ndarray:
    """(frames,) energy within ±10 % of f0 in each FRAME_S frame."""
    n = round(FRAME_S * sound.SAMPLE_RATE)
    spectrum = np.abs(np.fft.rfft(wave.reshape(-1, n) * np.hanning(n), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / sound.SAMPLE_RATE)
    return spectrum[:, (freqs > 0.9 * f0) & (freqs < 1.1 * f0)].sum(axis=1)


def _frames(events: list[dict], whole: bool) -> np.ndarray:
    """(frames,) bool: frames lying wholly within (whole) or touching (not whole) any of the events."""
    start = np.arange(100) * FRAME_S
    hit = np.zeros(100, dtype=bool)
    for e in events:
        if whole:
            hit |= (start >= e["start"] - 1e-6) & (start + FRAME_S <= e["end"] + 1e-6)
        else:
            hit |= (start + FRAME_S > e["start"] + 1e-6) & (start < e["end"] - 1e-6)
    return hit


def test_sounding_segments_are_where_the_class_pitch_has_energy(world):
    """In 0.1 s frames that no distractor touches, the sounding class's fundamental is loud inside its
    segments and near silent outside (only noise there), even at 10 dB SNR and between pulses."""
    checked = 0
    for s in _scenes(world):
        wave, _ = sf.read(world / s["audio"], dtype="float32")
        energy = _band_energy(wave, sound.PITCH_HZ[s["objects"][s["sounding"]]["class"].split()[0]])
        own = [e for e in s["events"] if not e["distractor"]]
        clear = ~_frames([e for e in s["events"] if e["distractor"]], whole=False)
        inside, outside = energy[_frames(own, whole=True) & clear], energy[~_frames(own, whole=False) & clear]
        if inside.size and outside.size:
            assert inside.min() > 4 * outside.max(), s["scene_id"]
            assert np.median(inside) > 100 * np.median(outside), s["scene_id"]
            checked += 1
    assert checked >= N - 2


@pytest.mark.parametrize("cls", CLASSES)
def test_every_class_has_its_own_pitch_and_stays_below_6_khz(cls):
    colour, shape = cls.split()
    wave = sound.event(colour, shape, 2 * sound.SAMPLE_RATE, 0.1, 0.0)
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / sound.SAMPLE_RATE)
    assert abs(freqs[spectrum.argmax()] - sound.PITCH_HZ[colour]) < 0.05 * sound.PITCH_HZ[colour]
    assert spectrum[freqs > 6_000].sum() < 1e-4 * spectrum.sum()
    assert abs(wave[0]) < 1e-3 and abs(wave[-1]) < 1e-3  # faded in and out: no click


def test_shapes_differ_in_timbre_and_rhythm_and_colours_in_pitch():
    assert len({(s.timbre, s.pulse_hz) for s in sound.SIGNATURES.values()}) == len(sound.SIGNATURES)
    pitches = sorted(sound.PITCH_HZ.values())
    assert len(set(pitches)) == 4 and min(b / a for a, b in zip(pitches, pitches[1:])) >= 1.4


@pytest.mark.parametrize("objects,distractors", [((1, 1), (0, 0)), ((2, 3), (2, 2)), ((3, 3), (1, 2))])
def test_object_and_distractor_knobs_bound_the_counts(tmp_path, objects, distractors):
    generate(tmp_path, 8, seed=3, objects=objects, distractors=distractors, workers=1)
    for s in _scenes(tmp_path):
        assert objects[0] <= len(s["objects"]) <= objects[1]
        extra = [e for e in s["events"] if e["distractor"]]
        assert distractors[0] <= len(extra) <= distractors[1]
        visible = {o["class"] for o in s["objects"]}
        assert len(visible) == len(s["objects"])  # the sounding class is unique in the picture
        assert not visible & {e["class"] for e in extra}  # distractors are never in the picture


def test_lower_snr_puts_more_noise_in_the_quiet_parts(tmp_path):
    quiet = {}
    for snr in (5.0, 35.0):
        generate(tmp_path / str(snr), 6, seed=4, distractors=(0, 0), snr_db=(snr, snr), workers=1)
        quiet[snr] = []
        for s in _scenes(tmp_path / str(snr)):
            assert s["snr_db"] == snr
            wave, _ = sf.read(tmp_path / str(snr) / s["audio"], dtype="float32")
            silent = ~np.repeat(_frames(s["events"], whole=False), round(FRAME_S * sound.SAMPLE_RATE))
            quiet[snr].append(np.mean(wave[silent].astype(np.float64) ** 2))
    ratio_db = 10 * np.log10(np.array(quiet[5.0]) / np.array(quiet[35.0]))
    assert np.all(np.abs(ratio_db - 30) < 1.5), ratio_db


def test_segments_lie_on_the_tenth_second_grid_inside_the_clip_without_overlap(world):
    for s in _scenes(world):
        own = [e for e in s["events"] if not e["distractor"]]
        assert 1 <= len(own) <= 2
        for e in s["events"]:
            assert 0 <= e["start"] < e["end"] <= s["duration"]
            assert 1.0 - 1e-9 <= e["end"] - e["start"] <= 4.0 + 1e-9
            assert e["start"] == round(e["start"], 1) and e["end"] == round(e["end"], 1)
        for a, b in zip(own, own[1:]):
            assert b["start"] >= a["end"] + 0.5 - 1e-9


def test_views_share_one_soundtrack_per_take_and_draw_their_own_pictures(world, tmp_path):
    """Takes of 3 views: one FLAC per take, written once; a take's scenes agree on all the sound says
    (split, classes, sounding class, events) and differ in layout; one view per take is the plain world."""
    generate(tmp_path, 7, seed=0, views=3, workers=2)
    scenes = _scenes(tmp_path)
    assert [s["audio"] for s in scenes] == ["audio/scene_000000.flac"] * 3 + ["audio/scene_000003.flac"] * 3 + \
        ["audio/scene_000006.flac"]
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == ["scene_000000.flac", "scene_000003.flac",
                                                                      "scene_000006.flac"]
    for take in (scenes[0:3], scenes[3:6]):
        shared = [(s["split"], sorted(o["class"] for o in s["objects"]), s["objects"][s["sounding"]]["class"],
                   s["events"], s["snr_db"], s["noise"]) for s in take]
        assert shared[1:] == shared[:-1]
        boxes = [sorted(o["box"] for o in s["objects"]) for s in take]
        assert len({json.dumps(b) for b in boxes}) == 3  # three layouts
        images = {(tmp_path / s["image"]).read_bytes() for s in take}
        assert len(images) == 3
    one = tmp_path / "one"
    generate(one, N, seed=0, views=1, workers=1)
    assert _media_bytes(one) == _media_bytes(world)


@pytest.mark.parametrize("splits,expected", [((1.0, 0.0, 0.0), {"train"}), ((0.0, 0.0, 1.0), {"test"}),
                                             ((0.5, 0.5, 0.0), {"train", "val"})])
def test_split_fractions_assign_scenes_and_leave_the_scenes_unchanged(tmp_path, splits, expected):
    generate(tmp_path / "a", 20, seed=5, splits=splits, workers=1)
    generate(tmp_path / "b", 20, seed=5, workers=1)
    a, b = _scenes(tmp_path / "a"), _scenes(tmp_path / "b")
    assert {s["split"] for s in a} == expected
    assert [{**s, "split": None} for s in a] == [{**s, "split": None} for s in b]


def test_qa_answers_agree_with_the_annotation(world):
    types = set()
    for s in _scenes(world):
        assert 3 <= len(s["qa"]) <= 5
        source = s["objects"][s["sounding"]]
        own = [e for e in s["events"] if not e["distractor"]]
        classes = [o["class"] for o in s["objects"]]
        for qa in s["qa"]:
            q, a = qa["question"], qa["answer"]
            types.add(qa["type"])
            if qa["type"] == "which":
                assert a == f"the {source['class']}"
            elif qa["type"] == "how many":
                assert a == str(len(own) if "times" in q else len(classes))
            elif qa["type"] == "where":
                centre = (source["box"][0] + source["box"][2]) / 2
                assert a == ("left" if centre < 224 / 3 else "center" if centre < 2 * 224 / 3 else "right")
            elif qa["type"] == "when":
                t = own[-1]["end"] if "stop" in q else own[0]["start"]
                assert a == ("beginning" if t < 10 / 3 else "middle" if t < 20 / 3 else "end")
            else:
                assert qa["type"] == "is there"
                asked = next(c for c in CLASSES if f" {c} " in f" {q[:-1]} ")
                assert a == ("yes" if asked in classes else "no")
    assert types == {"which", "how many", "where", "when", "is there"}


def test_where_and_when_use_thirds():
    assert [where([0, 0, 40, 10], 224), where([90, 0, 130, 10], 224), where([200, 0, 224, 10], 224)] == \
        ["left", "center", "right"]
    assert [when(3.3, 10.0), when(3.4, 10.0), when(6.7, 10.0), when(10.0, 10.0)] == \
        ["beginning", "middle", "end", "end"]


def test_is_there_questions_are_balanced(tmp_path):
    generate(tmp_path, 80, seed=6, workers=2)
    answers = [qa["answer"] for s in _scenes(tmp_path) for qa in s["qa"] if qa["type"] == "is there"]
    assert 0.3 < answers.count("yes") / len(answers) < 0.7


def test_caption_names_the_objects_the_sound_and_how_often(world):
    for s in _scenes(world):
        c = s["caption"]
        assert c[0].isupper() and c.endswith(".")
        assert all(o["class"] in c for o in s["objects"])
        assert all(e["class"] in c for e in s["events"] if e["distractor"])
        own = [e for e in s["events"] if not e["distractor"]]
        verb = sound.SIGNATURES[s["objects"][s["sounding"]]["class"].split()[1]].verb
        assert f"{s['objects'][s['sounding']]['class']} {verb} {['once', 'twice'][len(own) - 1]}" in c
    assert len({s["caption"].split()[0] for s in _scenes(world)}) > 1  # wording varies


@pytest.mark.parametrize("knobs", [dict(objects=(0, 2)), dict(objects=(3, 2)), dict(distractors=(0, 14)),
                                   dict(snr_db=(30.0, 10.0)), dict(snr_db=(float("nan"), 10.0)),
                                   dict(snr_db=(0.0, float("inf"))), dict(splits=(0.5, 0.2, 0.2)), dict(views=0)])
def test_bad_knobs_raise_value_errors_naming_the_knob(knobs):
    with pytest.raises(ValueError, match=next(iter(knobs))):
        WorldConfig(**knobs)


def test_a_negative_seed_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="seed=-1"):
        generate(tmp_path / "w", 4, seed=-1, workers=1)
    assert not (tmp_path / "w").exists()
