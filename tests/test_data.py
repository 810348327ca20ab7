import json

import pytest

from meerkat.data import decode_row, load_instructions, select_tasks


def _write(path, samples):
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))


ARIG = {"id": "s/1/arig", "source": "s", "task": "arig", "clip_id": "c1", "image": "a.jpg", "audio": "a.wav",
        "conversations": [{"role": "user", "content": "<image>\n<audio>\nWhere?"},
                          {"role": "assistant", "content": "The dog at [0.10, 0.20, 0.30, 0.40]."}],
        "target": {"boxes": [[0.1, 0.2, 0.3, 0.4]]}, "grounding": {"boxes": [[0.1, 0.2, 0.3, 0.4]]}}
AVFC = {"id": "s/2/avfc", "source": "s", "task": "avfc", "image": "b.jpg", "audio": "b.wav",
        "conversations": [{"role": "user", "content": "<image>\n<audio>\nTrue?"}, {"role": "assistant", "content": "No."}],
        "target": {"truth": False, "fact_type": 3}}


def test_files_load_in_order_with_task_specific_targets_intact(tmp_path):
    _write(tmp_path / "a.jsonl", [ARIG])
    _write(tmp_path / "b.jsonl", [AVFC])
    ds = load_instructions([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], cache_dir=tmp_path / "cache")
    assert ds["id"] == ["s/1/arig", "s/2/avfc"]
    first, second = decode_row(ds[0]), decode_row(ds[1])
    assert first["target"] == {"boxes": [[0.1, 0.2, 0.3, 0.4]]} and first["clip_id"] == "c1"
    assert second["target"] == {"truth": False, "fact_type": 3} and second["grounding"] == {} and second["clip_id"] is None
    assert second["conversations"][1] == {"role": "assistant", "content": "No."}


def test_the_arrow_cache_is_reused_and_refreshed_when_the_file_changes(tmp_path):
    _write(tmp_path / "a.jsonl", [ARIG])
    first = load_instructions(tmp_path / "a.jsonl", cache_dir=tmp_path / "cache")
    again = load_instructions(tmp_path / "a.jsonl", cache_dir=tmp_path / "cache")
    assert first.cache_files and first.cache_files == again.cache_files
    _write(tmp_path / "a.jsonl", [ARIG, dict(AVFC, id="s/3/avfc")])
    changed = load_instructions(tmp_path / "a.jsonl", cache_dir=tmp_path / "cache")
    assert len(changed) == 2 and changed.cache_files != first.cache_files


def test_a_broken_line_is_named(tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps(ARIG) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a valid sample"):
        load_instructions(tmp_path / "bad.jsonl", cache_dir=tmp_path / "cache")


def _avqa(n, kind):
    return {"id": f"s/{n}/avqa", "source": "s", "task": "avqa", "image": "c.jpg", "audio": "c.wav",
            "conversations": [{"role": "user", "content": "<image>\n<audio>\nQ?"}, {"role": "assistant", "content": "A."}],
            "target": {"answer": "a", "question_type": kind}}


def test_select_tasks_keeps_whole_tasks_and_single_types_in_file_order(tmp_path):
    _write(tmp_path / "a.jsonl", [_avqa(1, "where"), ARIG, _avqa(2, "what"), AVFC, _avqa(3, "where")])
    rows = load_instructions(tmp_path / "a.jsonl", cache_dir=tmp_path / "cache")
    assert select_tasks(rows, ["arig", "avqa:where"])["id"] == ["s/1/avqa", "s/1/arig", "s/3/avqa"]
    assert select_tasks(rows, ["avfc:3"])["id"] == ["s/2/avfc"]  # fact types are numbers in the target
    assert select_tasks(rows, ["avqa"])["id"] == ["s/1/avqa", "s/2/avqa", "s/3/avqa"]


def test_select_tasks_names_what_the_data_holds_when_a_selector_matches_nothing(tmp_path):
    _write(tmp_path / "a.jsonl", [_avqa(1, "where"), ARIG])
    rows = load_instructions(tmp_path / "a.jsonl", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"'avqa:wher' matches no sample; the data holds arig, avqa:where"):
        select_tasks(rows, ["arig", "avqa:wher"])
    with pytest.raises(ValueError, match=r"arig:left — only avfc, avqa samples have types"):
        select_tasks(rows, ["arig:left"])
