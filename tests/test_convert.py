import json
import types

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from instruct_data.convert import ConversionError, convert, rejects_path
from instruct_data.sources.base import Record, Reject, Row
from instruct_data.validate import validate
from meerkat.grounding import format_boxes, format_segments, parse_verdict


def _source(rows, tasks=("arig", "igatl", "avfc")):
    return types.SimpleNamespace(NAME="fake", TASKS=tasks, INPUTS="", MEDIA="", read=lambda annotations, split: iter(rows))


def _media(root, name):
    Image.new("RGB", (32, 24), (200, 10, 10)).save(root / f"{name}.jpg")
    sf.write(root / f"{name}.wav", np.zeros(4800, np.float32), 48_000)


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
    assert "d.jpg does not exist" in rejects[1]["detail"]
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
