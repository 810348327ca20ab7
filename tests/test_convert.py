import json
import os
import stat
import types
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from instruct_data.convert import ConversionError, Summary, convert, rejects_path
from instruct_data.sources.base import Record, Reject, Row
from instruct_data.validate import box_problem, segment_problem, validate
from meerkat.grounding import format_boxes, format_segments, parse_verdict


def _source(rows, tasks=("arig", "igatl", "avfc")):
    return types.SimpleNamespace(NAME="fake", TASKS=tasks, INPUTS="", MEDIA="", read=lambda annotations, split: iter(rows))


def _media(root, name, seconds=10.0):
    """A frame and a silent wav of `seconds` (the clips' 10 s by default: segments are checked against it)."""
    Image.new("RGB", (32, 24), (200, 10, 10)).save(root / f"{name}.jpg")
    sf.write(root / f"{name}.wav", np.zeros(int(8_000 * seconds), np.float32), 8_000)


def _record(uid, label="dog", **kw):
    base = dict(uid=uid, clip_id=uid, image=f"{uid}.jpg", audio=f"{uid}.wav", label=label,
                boxes=[[0.1, 0.2, 0.5, 0.6]], segments=[[1.0, 3.0]], duration=10.0)
    return Record(**(base | kw))


def _read(path):
    return [json.loads(line) for line in open(path)]


def test_every_row_is_converted_or_rejected_with_its_reason(tmp_path):
    for name in ("a", "b", "c"):
        _media(tmp_path, name)
    rows = [
        Row("f[0]", _record("a")),
        Row("f[1]", _record("b", label="cat", segments=[[6.0, 9.0]], boxes=[[0.6, 0.1, 0.9, 0.4]])),
        Row("f[2]", _record("a")),  # duplicate
        Row("f[3]", _record("d")),  # media missing
        Row("f[4]", _record("e", boxes=[[0.5, 0.2, 0.4, 0.6]])),  # reversed box
        Row("f[5]", _record("g", segments=[[8.0, 12.0]])),  # past the 10 s clip
        Row("f[6]", Reject("missing_field", "bbox: absent")),
        Row("f[7]", _record("../../etc/passwd")),  # escapes the media root
    ]
    out = tmp_path / "out.jsonl"
    summary = convert(_source(rows), tmp_path / "ann", out, media_root=tmp_path, progress=False)
    assert summary.rows == 8 and summary.records == 2
    assert dict(summary.rejected) == {"duplicate_id": 1, "missing_media": 1, "box_outside_image": 1,
                                      "segment_past_end": 1, "missing_field": 1, "path_escape": 1}
    rejects = _read(rejects_path(out))
    assert [r["row"] for r in rejects] == ["f[2]", "f[3]", "f[4]", "f[5]", "f[6]", "f[7]"]
    assert "d.wav does not exist" in rejects[1]["detail"]  # the audio is checked first
    samples = _read(out)
    assert sorted(s["id"] for s in samples) == sorted(f"fake/{u}/{t}" for u in "ab" for t in ("arig", "igatl", "avfc"))
    assert validate(out, tmp_path) == []


def test_arig_and_igatl_answers_carry_the_grounding_text(tmp_path):
    out = tmp_path / "out.jsonl"
    convert(_source([Row("r0", _record("a"))], tasks=("arig", "igatl")), tmp_path, out, progress=False)
    arig, igatl = _read(out)
    assert arig["conversations"][0]["content"].startswith("<image>\n<audio>\n")
    assert "[0.10, 0.20, 0.50, 0.60]" in arig["conversations"][1]["content"]
    assert arig["target"] == {"boxes": [[0.1, 0.2, 0.5, 0.6]]} and arig["grounding"] == {"boxes": [[0.1, 0.2, 0.5, 0.6]]}
    assert "[1.0, 3.0]" in igatl["conversations"][1]["content"]
    assert igatl["target"] == {"segments": [[1.0, 3.0]], "duration": 10.0}


def test_avfc_is_balanced_and_false_statements_use_other_samples(tmp_path):
    labels = ["dog", "cat", "car", "bird"]
    rows = [Row(f"r{i}", _record(f"u{i}", label=labels[i % 4], segments=[[float(i % 5), float(i % 5) + 2]],
                                  boxes=[[0.1 * (i % 4), 0.1, 0.1 * (i % 4) + 0.3, 0.5]])) for i in range(80)]
    out = tmp_path / "out.jsonl"
    convert(_source(rows, tasks=("avfc",)), tmp_path, out, progress=False)
    samples = _read(out)
    truths = [s["target"]["truth"] for s in samples]
    assert len(samples) == 80 and abs(sum(truths) - 40) <= 4
    assert {s["target"]["fact_type"] for s in samples} == {1, 2, 3, 4}
    for s in samples:
        answer = s["conversations"][1]["content"]
        record = rows[int(s["clip_id"][1:])].value
        assert parse_verdict(answer) is s["target"]["truth"]
        # the answer states the record's own facts before its verdict
        fact = {1: record.label, 2: record.label if s["target"]["truth"] else None, 3: format_segments(record.segments),
                4: format_boxes(record.boxes)}[s["target"]["fact_type"]]
        assert fact is None or fact in answer.split(" So ")[0].split(" That makes")[0], answer
        if s["target"]["fact_type"] == 1 and not s["target"]["truth"]:
            assert record.label not in s["target"]["statement"]
        if s["target"]["fact_type"] == 2:
            assert (s["image"] == record.image) == s["target"]["truth"]


def test_a_false_source_statement_never_names_a_class_heard_in_the_clip(tmp_path):
    labels = ["dog", "cat", "car", "bird", "bell"]
    # each clip hears two other classes as distractors: only one class is left to name falsely
    rows = [Row(f"r{i}", _record(f"u{i}", label=labels[i % 5], visible_labels=[labels[i % 5]],
                                  extra={"distractors": [labels[(i + 1) % 5], labels[(i + 2) % 5]]})) for i in range(60)]
    out = tmp_path / "out.jsonl"
    convert(_source(rows, tasks=("avfc",)), tmp_path, out, progress=False)
    false_type_1 = [s for s in _read(out) if s["target"]["fact_type"] == 1 and not s["target"]["truth"]]
    assert len(false_type_1) >= 5
    for s in false_type_1:
        record = rows[int(s["clip_id"][1:])].value
        named = [label for label in labels if label in s["target"]["statement"]]
        assert named and set(named).isdisjoint(record.extra["distractors"] + [record.label]), s["target"]["statement"]


def test_same_seed_same_output_and_another_seed_other_phrasing(tmp_path):
    rows = [Row(f"r{i}", _record(f"u{i}")) for i in range(6)]
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        convert(_source(rows), tmp_path, path, seed=seed, progress=False)
    assert a.read_text() == b.read_text() and a.read_text() != c.read_text()


def test_strict_stops_at_the_first_bad_row_and_writes_no_output(tmp_path):
    rows = [Row("r0", _record("a")), Row("r1", Reject("bad_value", "bbox: 'x'"))]
    out = tmp_path / "out.jsonl"
    with pytest.raises(ConversionError, match=r"r1: bad_value: bbox: 'x'"):
        convert(_source(rows), tmp_path, out, strict=True, progress=False)
    assert not out.exists() and _read(rejects_path(out))[0]["reason"] == "bad_value"


def test_a_crash_mid_write_leaves_no_partial_file(tmp_path):
    def rows():
        yield Row("r0", _record("a"))
        raise KeyboardInterrupt

    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    with pytest.raises(KeyboardInterrupt):
        convert(types.SimpleNamespace(NAME="fake", TASKS=("arig",), read=lambda a, s: rows()), tmp_path, out, progress=False)
    assert out.read_text() == "previous\n" and not list(tmp_path.glob(".*.part"))


def test_records_that_feed_no_task_are_rejected_not_dropped(tmp_path):
    out = tmp_path / "out.jsonl"
    summary = convert(_source([Row("r0", Record(uid="x", clip_id="x", audio="x.wav"))], tasks=("arig",)), tmp_path, out,
                      progress=False)
    assert summary.rejected == {"no_task": 1} and _read(rejects_path(out))[0]["row"] == "r0"


def test_segments_are_checked_against_the_real_audio_and_duration_is_cut_to_it(tmp_path):
    _media(tmp_path, "short", seconds=4.0)
    _media(tmp_path, "early", seconds=9.98)  # an encoder ended the 10 s clip a frame early
    _media(tmp_path, "late", seconds=4.0)
    rows = [Row("r0", _record("short", segments=[[1.0, 3.0]])), Row("r1", _record("early", segments=[[9.0, 10.0]])),
            Row("r2", _record("late", segments=[[5.0, 8.0]]))]
    out = tmp_path / "out.jsonl"
    summary = convert(_source(rows, tasks=("igatl",)), tmp_path, out, media_root=tmp_path, progress=False)
    assert summary.rejected == {"segment_past_end": 1}
    assert _read(rejects_path(out)) == [{"row": "r2", "reason": "segment_past_end", "detail":
                                         "segments: [[5.0, 8.0]] end at 8 s, but the audio late.wav lasts only 4.00 s"}]
    targets = {s["clip_id"]: s["target"] for s in _read(out)}
    assert targets == {"short": {"segments": [[1.0, 3.0]], "duration": 4.0},
                       "early": {"segments": [[9.0, 10.0]], "duration": 10.0}}
    assert validate(out, tmp_path) == []


def test_escaping_media_paths_are_rejected_without_a_media_root(tmp_path):
    rows = [Row("r0", _record("a", image="frames/../../../etc/passwd.jpg")), Row("r1", _record("b", audio="/etc/hostname")),
            Row("r2", _record("c", video="../videos/c.mp4")), Row("r3", _record("d", image="frames/../d.jpg"))]
    out = tmp_path / "out.jsonl"
    summary = convert(_source(rows, tasks=("arig",)), tmp_path, out, progress=False)
    assert summary.rejected == {"path_escape": 3} and summary.records == 1
    assert [(r["row"], r["detail"]) for r in _read(rejects_path(out))] == [
        ("r0", "image: 'frames/../../../etc/passwd.jpg' climbs out of the media root with '..'"),
        ("r1", "audio: '/etc/hostname' is absolute; media paths are relative to the media root"),
        ("r2", "video: '../videos/c.mp4' climbs out of the media root with '..'")]
    assert [s["image"] for s in _read(out)] == ["frames/../d.jpg"]  # `..` that stays inside is a path like any


def test_outputs_get_the_mode_the_umask_gives_not_mkstemps_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        convert(_source([Row("r0", _record("a"))]), tmp_path, tmp_path / "out.jsonl", progress=False)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.jsonl").stat().st_mode) == 0o644
    assert stat.S_IMODE(rejects_path(tmp_path / "out.jsonl").stat().st_mode) == 0o644


def test_summary_columns_widen_for_long_reason_names():
    summary = Summary("fake", rows=4, records=1, rejected=Counter({"box_outside_image": 2, "a_reason_of_27_characters__": 1}),
                      samples=Counter({"arig": 1}))
    lines = summary.table().splitlines()
    assert [line.split() for line in lines] == [
        ["source", "fake"], ["rows", "read", "4"], ["records", "1"], ["rejected", "3"], ["a_reason_of_27_characters__", "1"],
        ["box_outside_image", "2"], ["samples", "written", "1"], ["arig", "1"]]
    assert len({line.rindex(" ") for line in lines}) == 1  # every count starts in one column


def test_a_boolean_is_no_coordinate():
    assert box_problem([True, 0.1, 0.2, 0.3]) == "[True, 0.1, 0.2, 0.3] is not a list of 4 numbers"
    assert segment_problem([0, True], 10.0) == "[0, True] is not a list of 2 numbers"


def test_strict_also_stops_at_a_record_that_feeds_no_task(tmp_path):
    rows = [Row("r0", _record("a")), Row("r1", Record(uid="x", clip_id="x", audio="x.wav"))]
    out = tmp_path / "out.jsonl"
    with pytest.raises(ConversionError, match="r1: no_task"):
        convert(_source(rows, tasks=("arig",)), tmp_path, out, strict=True, progress=False)
    assert not out.exists() and _read(rejects_path(out))[0]["reason"] == "no_task"
