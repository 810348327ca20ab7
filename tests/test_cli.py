import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from instruct_data.cli import main
from instruct_data.sources import SOURCE_NAMES

COMMANDS = ("sources", "convert", "validate", "mix", "split", "stats", "synth")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"meerkat-data {command}" in capsys.readouterr().out


def test_sources_lists_every_source_with_its_tasks(capsys):
    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    for name in SOURCE_NAMES:
        assert f"{name}  →  " in out
    assert "vggss  →  arig" in out and "annotations:" in out and "media:" in out


def test_convert_prints_the_summary_and_writes_rejects(tmp_path, capsys, request):
    fixture = request.path.parent / "fixtures" / "vggss" / "vggss.json"
    out = tmp_path / "vggss.jsonl"
    assert main(["convert", "vggss", "--annotations", str(fixture), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    samples = [json.loads(line) for line in open(out)]
    rejects = [json.loads(line) for line in open(tmp_path / "vggss.rejects.jsonl")]
    counts = dict(line.rsplit(None, 1) for line in printed.splitlines() if not line.startswith(("wrote", " ")))
    assert counts["samples written"] == str(len(samples)) and counts["rejected"] == str(len(rejects))
    assert len(samples) + len(rejects) == len(json.load(open(fixture)))
    assert main(["convert", "vggss", "--annotations", str(fixture), "--out", str(out), "--strict"]) == 1
    assert "--strict stops at the first bad row" in capsys.readouterr().err


def _sample(i, **kw):
    base = {"id": f"s/{i}", "source": "s", "task": "arig", "clip_id": f"clip{i % 7}", "image": f"{i}.jpg", "audio": f"{i}.wav",
            "conversations": [{"role": "user", "content": "<image>\n<audio>\nWhere?"},
                              {"role": "assistant", "content": "At [0.10, 0.20, 0.30, 0.40]."}],
            "target": {"boxes": [[0.1, 0.2, 0.3, 0.4]]}}
    return base | kw


def _write(path, samples):
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def test_validate_reports_each_problem_with_line_and_field(tmp_path, capsys):
    for i in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.jpg")
        sf.write(tmp_path / f"{i}.wav", np.zeros(100, np.float32), 48_000)
    good = _write(tmp_path / "good.jsonl", [_sample(0), _sample(1)])
    assert main(["validate", str(good), "--media-root", str(tmp_path)]) == 0
    assert "good.jsonl: OK" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.jsonl", [
        _sample(0), _sample(0),  # duplicate id
        _sample(2, target={"boxes": [[0.5, 0.2, 0.3, 1.4]]}),
        _sample(1, image="../../outside.jpg"),
        _sample(3),  # media missing
        _sample(1, id="s/9", image=None),  # an <image> placeholder but no image
    ])
    assert main(["validate", str(bad), "--media-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "bad.jsonl:2: id: 's/0' duplicates line 1" in out
    assert "bad.jsonl:3: target.boxes: [0.5, 0.2, 0.3, 1.4] is not a normalised" in out
    assert "bad.jsonl:4: image: '../../outside.jpg' climbs out of the media root with '..'" in out
    assert "bad.jsonl:5: image: no media file at" in out
    assert "bad.jsonl:6: image: 1 <image> placeholder(s) for no image" in out
    assert "6 problem(s)" in out


def test_mix_applies_weights_deterministically_with_unique_ids(tmp_path):
    a = _write(tmp_path / "a.jsonl", [_sample(i, source="a") for i in range(10)])
    b = _write(tmp_path / "b.jsonl", [_sample(100 + i, source="b") for i in range(10)])
    runs = []
    for name in ("m1", "m2"):
        assert main(["mix", f"{a}:2", f"{b}:0.5", "--out", str(tmp_path / f"{name}.jsonl"), "--seed", "3"]) == 0
        runs.append([json.loads(line) for line in open(tmp_path / f"{name}.jsonl")])
    mixed = runs[0]
    assert runs[0] == runs[1]
    assert sum(s["source"] == "a" for s in mixed) == 20 and sum(s["source"] == "b" for s in mixed) == 5
    assert len({s["id"] for s in mixed}) == 25
    assert [s["source"] for s in mixed] != sorted(s["source"] for s in mixed)  # shuffled


def test_mix_rejects_a_bad_weight(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", [_sample(0)])
    assert main(["mix", f"{a}:lots", "--out", str(tmp_path / "m.jsonl")]) == 1
    assert "the weight after ':' must be a number, got 'lots'" in capsys.readouterr().err


def test_split_keeps_each_clip_in_one_split(tmp_path):
    samples = [_sample(i, clip_id=f"clip{i // 3}") for i in range(300)]  # 3 samples per clip
    assert main(["split", str(_write(tmp_path / "all.jsonl", samples)), "--out", str(tmp_path / "parts")]) == 0
    parts = {name: [json.loads(line) for line in open(tmp_path / "parts" / f"{name}.jsonl")] for name in ("train", "val", "test")}
    clips = {name: {s["clip_id"] for s in part} for name, part in parts.items()}
    assert not (clips["train"] & clips["val"] or clips["train"] & clips["test"] or clips["val"] & clips["test"])
    assert sum(len(p) for p in parts.values()) == 300
    assert 60 <= len(parts["train"]) / 3 <= 95 and parts["val"] and parts["test"]


def test_stats_prints_counts_and_percentiles(tmp_path, capsys):
    samples = [_sample(i) for i in range(4)] + [_sample(9, task="avqa", source="t")]
    assert main(["stats", str(_write(tmp_path / "s.jsonl", samples)), "--image-tokens", "10", "--audio-tokens", "5"]) == 0
    out = capsys.readouterr().out
    assert "5 samples" in out and "arig            4" in out and "avqa            1" in out and "t               1" in out
    assert "tokens (10 per image, 5 per audio)" in out and "p50" in out and "max" in out


def test_mix_rebases_each_inputs_media_paths_onto_the_common_root(tmp_path, capsys):
    data = tmp_path / "data"
    for folder in ("vggsound", "synth"):
        (data / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(data / folder / "0.jpg")
        sf.write(data / folder / "0.wav", np.zeros(100, np.float32), 48_000)
    a = _write(tmp_path / "a.jsonl", [_sample(0, source="a")])
    b = _write(tmp_path / "b.jsonl", [_sample(0, id="b/0", source="b", audio=None,
                                              conversations=[{"role": "user", "content": "<image>\nWhere?"},
                                                             {"role": "assistant", "content": "There."}])])
    out = tmp_path / "mixed.jsonl"
    assert main(["mix", f"{a}:1", f"{b}:1", "--out", str(out), "--media-root", str(data),
                 "--root", f"{a}={data / 'vggsound'}", "--root", f"{b}={data / 'synth'}"]) == 0
    mixed = {s["id"]: s for s in map(json.loads, open(out))}
    assert (mixed["s/0"]["image"], mixed["s/0"]["audio"]) == ("vggsound/0.jpg", "vggsound/0.wav")
    assert (mixed["b/0"]["image"], mixed["b/0"]["audio"]) == ("synth/0.jpg", None)
    assert main(["validate", str(out), "--media-root", str(data)]) == 0


@pytest.mark.parametrize("args, error", [
    (["--root", "{a}={tmp}/data"], "--root needs --media-root"),
    (["--media-root", "{tmp}/data"], "add --root FILE=ROOT for {a}"),
    (["--media-root", "{tmp}/data", "--root", "{a}={tmp}/elsewhere"], "is not inside --media-root"),
    (["--media-root", "{tmp}/data", "--root", "{tmp}/other.jsonl={tmp}/data"], "is not one of the inputs"),
    (["--media-root", "{tmp}/data", "--root", "{a}"], "expected FILE=ROOT"),
])
def test_mix_roots_that_cannot_serve_one_media_root_are_refused(tmp_path, capsys, args, error):
    a = _write(tmp_path / "a.jsonl", [_sample(0)])
    args = [arg.format(a=a, tmp=tmp_path) for arg in args]
    assert main(["mix", str(a), "--out", str(tmp_path / "m.jsonl"), *args]) == 1
    assert error.format(a=a) in capsys.readouterr().err and not (tmp_path / "m.jsonl").exists()


def test_mix_refuses_a_media_path_that_leaves_its_root(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", [_sample(0), _sample(1, audio="../../1.wav")])
    (tmp_path / "data" / "a").mkdir(parents=True)
    assert main(["mix", str(a), "--out", str(tmp_path / "m.jsonl"), "--media-root", str(tmp_path / "data"),
                 "--root", f"{a}={tmp_path / 'data' / 'a'}"]) == 1
    assert f"{a}:2: audio: '../../1.wav' climbs out of the media root with '..'" in capsys.readouterr().err


def test_mix_keeps_ids_unique_when_a_file_is_given_twice(tmp_path):
    a = _write(tmp_path / "a.jsonl", [_sample(0), _sample(1, id="s/0#1")])  # an id that already ends in #1
    assert main(["mix", f"{a}:1", f"{a}:1", "--out", str(tmp_path / "m.jsonl")]) == 0
    ids = [json.loads(line)["id"] for line in open(tmp_path / "m.jsonl")]
    assert sorted(ids) == ["s/0", "s/0#1", "s/0#1#1", "s/0#2"]


@pytest.mark.parametrize("command", ["mix", "split", "stats"])
@pytest.mark.parametrize("line, error", [
    ({"source": "s"}, "id: missing or not a str"),
    ([1, 2], "a line must hold one JSON object, not a list"),
])
def test_a_bad_line_is_an_error_naming_file_line_and_field(tmp_path, capsys, command, line, error):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(_sample(0)) + "\n" + json.dumps(line) + "\n")
    out = ["--out", str(tmp_path / "out")] if command != "stats" else []
    assert main([command, str(path), *out]) == 1
    assert f"error: {path}:2: {error}" in capsys.readouterr().err


def test_stats_names_a_line_without_source(tmp_path, capsys):
    path = _write(tmp_path / "in.jsonl", [{k: v for k, v in _sample(0).items() if k != "source"}])
    assert main(["stats", str(path)]) == 1
    assert f"error: {path}:1: source: missing or not a str" in capsys.readouterr().err


def test_stats_names_a_tokenizer_folder_that_does_not_exist(tmp_path, capsys):
    path = _write(tmp_path / "in.jsonl", [_sample(0)])
    assert main(["stats", str(path), "--tokenizer", str(tmp_path / "nowhere")]) == 1
    assert f"error: --tokenizer {tmp_path / 'nowhere'}: no such folder; pass a local tokenizer folder" in capsys.readouterr().err


def test_split_into_an_existing_file_is_a_clear_error(tmp_path, capsys):
    path = _write(tmp_path / "a.jsonl", [_sample(0)])
    assert main(["split", str(path), "--out", str(path)]) == 1
    assert f"error: --out {path} is a file; split writes" in capsys.readouterr().err
    assert json.loads(path.read_text()) == _sample(0)


def test_a_negative_limit_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["convert", "vggss", "--annotations", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--limit", "-1"])
    assert done.value.code == 2 and "expected a whole number >= 0, got '-1'" in capsys.readouterr().err


def test_validate_without_a_media_root_still_reports_escaping_paths(tmp_path, capsys):
    path = _write(tmp_path / "abs.jsonl", [_sample(0, image="/etc/passwd", audio="a/../../x.wav")])
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:1: image: '/etc/passwd' is absolute; media paths are relative to the media root" in out
    assert f"{path}:1: audio: 'a/../../x.wav' climbs out of the media root with '..'" in out


@pytest.mark.parametrize("args, low, high", [(["--snr-db=-5-10"], -5.0, 10.0), (["--snr-db", "12.5"], 12.5, 12.5)])
def test_synth_snr_ranges_take_negative_and_decimal_ends(tmp_path, args, low, high):
    assert main(["synth", "--out", str(tmp_path), "--n", "6", *args]) == 0
    scenes = [json.loads(line) for line in (tmp_path / "annotations.jsonl").read_text().splitlines()]
    assert all(low <= s["snr_db"] <= high for s in scenes) and (low < 0) == any(s["snr_db"] < 0 for s in scenes)


@pytest.mark.parametrize("args", [["--snr-db", "nan"], ["--snr-db", "10-x"], ["--objects", "1.5"]])
def test_synth_refuses_a_range_that_is_not_numbers(tmp_path, capsys, args):
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--n", "2", *args])
    assert "expected a number or a range" in capsys.readouterr().err


@pytest.mark.parametrize("change, problem", [
    ({"grounding": [1]}, "grounding: must be an object or absent"),
    ({"target": {"boxes": 5}}, "target.boxes: must be a list"),
    ({"target": {"segments": 3, "duration": 10}}, "target.segments: must be a list"),
    ({"conversations": [{"role": "user", "content": 5}, {"role": "assistant", "content": "At [0.10, 0.20, 0.30, 0.40]."}]},
     "conversations[0]: must be a non-empty user turn"),
])
@pytest.mark.parametrize("command", ["validate", "stats"])
def test_a_field_of_the_wrong_type_is_a_problem_not_a_traceback(tmp_path, capsys, change, problem, command):
    path = _write(tmp_path / "in.jsonl", [_sample(0, **change)])
    assert main([command, str(path)]) == 1
    captured = capsys.readouterr()
    assert f"{path}:1: {problem}" in (captured.out if command == "validate" else captured.err)


def test_stats_columns_line_up_with_their_header(tmp_path, capsys):
    assert main(["stats", str(_write(tmp_path / "s.jsonl", [_sample(i) for i in range(3)]))]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.rstrip().endswith("max"))
    for row in (line for line in lines if line.startswith(("answer words", "tokens ("))):
        assert len(row) == len(header), (header, row)


def test_output_cut_short_by_a_reader_that_stops_early_is_not_an_error():
    """`meerkat-data sources | head -1`: the closed pipe is the reader's choice, not an error to print."""
    run = subprocess.run(f"{sys.executable} -m instruct_data sources | head -1", shell=True, capture_output=True,
                         text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert run.stdout.startswith("vggss") and len(run.stdout.splitlines()) == 1
    assert "Broken pipe" not in run.stderr and "Traceback" not in run.stderr
