"""The synth source reads the world's annotations.jsonl like a public dataset: records, rejects, splits."""

import json
from collections import Counter
from pathlib import Path

import pytest

from instruct_data.convert import convert
from instruct_data.sources import synth
from instruct_data.sources.base import Record, Reject
from instruct_data.synth import generate

N = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate(out, N, seed=0, workers=1)
    return out


def _scenes(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]


def test_each_scene_gives_one_grounding_record_and_one_record_per_question(world):
    rows = list(synth.read(world, None))
    scenes = _scenes(world)
    assert all(isinstance(r.value, Record) for r in rows)
    assert len(rows) == sum(1 + len(s["qa"]) for s in scenes)
    by_clip = Counter(r.value.clip_id for r in rows)
    assert by_clip == {s["scene_id"]: 1 + len(s["qa"]) for s in scenes}
    assert rows[0].ref == "annotations.jsonl:1"
    assert [r.value.uid for r in rows[:1 + len(scenes[0]["qa"])]] == \
        ["scene_000000"] + [f"scene_000000/q{k}" for k in range(len(scenes[0]["qa"]))]


def test_grounding_record_holds_the_normalised_box_segments_label_and_caption(world):
    records = {r.value.uid: r.value for r in synth.read(world / "annotations.jsonl", None)}
    for s in _scenes(world):
        r = records[s["scene_id"]]
        source = s["objects"][s["sounding"]]
        assert r.label == source["class"]
        assert r.boxes == [[v / 224 for v in source["box"]]]
        assert all(0 <= v <= 1 for v in r.boxes[0])
        assert r.segments == [[e["start"], e["end"]] for e in s["events"] if not e["distractor"]]
        assert (r.image, r.audio, r.duration) == (s["image"], s["audio"], 10.0)
        assert r.visible_labels == [o["class"] for o in s["objects"]]
        assert r.captions == [s["caption"]]
        assert r.extra["distractors"] == [e["class"] for e in s["events"] if e["distractor"]]
        assert r.extra["objects"] == [{"class": o["class"], "box": [v / 224 for v in o["box"]]} for o in s["objects"]]
        assert (r.extra["background"], r.extra["snr_db"]) == (s["background"], s["snr_db"])
        assert r.question is None


def test_qa_records_carry_only_the_question_and_answer(world):
    scene = _scenes(world)[0]
    rows = [r.value for r in synth.read(world, None) if r.value.clip_id == scene["scene_id"] and r.value.question]
    assert [(r.question, r.answer, r.question_type) for r in rows] == \
        [(qa["question"], qa["answer"], qa["type"]) for qa in scene["qa"]]
    for r in rows:
        assert r.label is None and r.boxes is None and r.segments is None and r.captions is None
        assert (r.image, r.audio) == (scene["image"], scene["audio"])
        if r.question_type in ("which", "where", "when", "is there"):
            assert r.answer in r.extra["options"]


def test_split_keeps_only_that_split(world):
    splits = {s["scene_id"]: s["split"] for s in _scenes(world)}
    seen = Counter()
    for split in ("train", "val", "test"):
        for row in synth.read(world, split):
            assert splits[row.value.clip_id] == split
            seen[row.value.clip_id] += 1
    assert seen == Counter(r.value.clip_id for r in synth.read(world, None))
    with pytest.raises(ValueError, match="validation"):
        list(synth.read(world, "validation"))


def test_missing_annotations_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations.jsonl"):
        list(synth.read(tmp_path, None))


def test_broken_lines_are_rejected_with_their_line_and_reason(world, tmp_path):
    good = _scenes(world)[0]
    outside = json.loads(json.dumps(good))
    outside["objects"][0]["box"] = [200, 10, 230, 40]
    late = json.loads(json.dumps(good))
    late["events"][0]["end"] = 10.5
    missing = {k: v for k, v in good.items() if k != "events"}
    no_answer = json.loads(json.dumps(good))
    no_answer["qa"][0]["answer"] = ""
    lines = [json.dumps(good), "{not json", json.dumps(missing), json.dumps(outside), "", json.dumps(late),
             json.dumps(no_answer), json.dumps({**good, "sounding": 7})]
    (tmp_path / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    rows = list(synth.read(tmp_path, None))
    rejects = [(r.ref, r.value.reason) for r in rows if isinstance(r.value, Reject)]
    assert rejects == [("annotations.jsonl:2", "bad_value"), ("annotations.jsonl:3", "missing_field"),
                       ("annotations.jsonl:4", "box_outside_image"), ("annotations.jsonl:6", "segment_past_end"),
                       ("annotations.jsonl:7", "empty_answer"), ("annotations.jsonl:8", "bad_value")]
    assert sum(isinstance(r.value, Record) for r in rows) == 1 + len(good["qa"])
    details = {r.ref: r.value.detail for r in rows if isinstance(r.value, Reject)}
    assert "'events'" in details["annotations.jsonl:3"] and "[200, 10, 230, 40]" in details["annotations.jsonl:4"]


def test_converter_builds_every_task_of_the_source_with_no_rejects(world, tmp_path):
    summary = convert(synth, world, tmp_path / "synth.jsonl", media_root=world, progress=False)
    assert not summary.rejected
    assert set(summary.samples) == set(synth.TASKS)
    assert summary.samples["avqa"] == sum(len(s["qa"]) for s in _scenes(world))


def test_views_of_one_take_share_a_clip_id_so_a_resplit_keeps_their_soundtrack_in_one_split(tmp_path):
    from instruct_data.mixture import split
    generate(tmp_path, 30, seed=0, workers=1, views=3)
    out = tmp_path / "all.jsonl"
    convert(synth, tmp_path, out, media_root=tmp_path, progress=False)
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert {s["clip_id"] for s in samples} == {Path(s["audio"]).stem for s in samples}
    assert len({s["clip_id"] for s in samples}) == 10
    splits_of = {}
    for name, part in split(samples, seed=1).items():
        for s in part:
            splits_of.setdefault(s["audio"], set()).add(name)
    assert all(len(names) == 1 for names in splits_of.values())  # 11 of 30 soundtracks crossed splits before


@pytest.mark.parametrize("change, reason, detail", [
    (lambda s: s.update(audio=None), "missing_field", "audio is null"),
    (lambda s: s.update(scene_id=None), "missing_field", "scene_id is null"),
    (lambda s: s.update(image=7), "bad_value", "image=7"),
    (lambda s: s["objects"][1].update({"class": None}), "bad_value", "objects[1].class"),
    (lambda s: s["qa"][0].update(answer=3), "bad_value", "qa[0]"),
    (lambda s: s.update(caption=["a", "b"]), "bad_value", "caption"),
])
def test_a_null_or_mistyped_field_is_rejected_not_a_traceback_or_the_text_none(world, tmp_path, change, reason, detail):
    scene = json.loads(json.dumps(_scenes(world)[0]))
    scene["objects"].append({"class": "red cross", "box": [0, 0, 10, 10]})  # a second object, whatever the scene holds
    change(scene)
    (tmp_path / "annotations.jsonl").write_text(json.dumps(scene) + "\n")
    rows = list(synth.read(tmp_path, None))
    assert [(r.ref, r.value.reason) for r in rows] == [("annotations.jsonl:1", reason)]
    assert detail in rows[0].value.detail
