import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from eval import TASKS, compare, metrics, report
from eval import run as eval_run
from meerkat import MeerkatModel, get_preset
from meerkat.media import MediaError, load_image


@pytest.fixture(autouse=True)
def no_java(monkeypatch):
    """Caption scores without the Java tools (seconds per call); tests/test_eval_metrics.py covers them."""
    monkeypatch.setattr(metrics, "java_available", lambda: False)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from instruct_data.cli import main as data_cli

    out = tmp_path_factory.mktemp("world")
    data_cli(["synth", "--out", str(out), "--n", "30", "--seed", "3"])
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt")
    MeerkatModel.build(get_preset("tiny")).save_pretrained(path)
    return path


def _lines(world: Path) -> list[dict]:
    return [json.loads(line) for line in (world / "test.jsonl").read_text().splitlines()]


def _write(path: Path, samples: list[dict]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def _as_task(sample: dict, task: str) -> dict:
    """The sample relabelled as another task (what the data CLI's `classify` rows or a typo look like)."""
    return dict(sample, id=f"{sample['id']}/{task}", task=task)


def _oracle_rows(world: Path) -> list[dict]:
    """Rows whose raw answer is the training answer itself: what a perfect model would say."""
    rows = []
    for line in (world / "test.jsonl").read_text().splitlines():
        sample = json.loads(line)
        rows.append({"id": sample["id"], "task": sample["task"], "raw": sample["conversations"][-1]["content"],
                     "target": sample["target"], "image": sample["image"], "audio": sample["audio"]})
    return rows


@pytest.fixture(scope="module")
def oracle(world):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "java_available", lambda: False)
        return eval_run.summarise(_oracle_rows(world))


def test_the_training_answers_score_perfectly(oracle):
    """Parsing inverts the data's own answer phrasings on every task (boxes lose only their rounding)."""
    results, rows = oracle
    tasks = results["tasks"]
    assert set(tasks) == set(TASKS) and results["overall"]["parse_failures"] == 0
    assert tasks["arig"]["metrics"]["ciou"] == 1.0 and tasks["arig"]["metrics"]["mean_iou"] > 0.95
    assert tasks["igatl"]["metrics"]["f1_segments"] == 1.0 and tasks["igatl"]["metrics"]["f1_bins"] > 0.97
    assert tasks["avfc"]["metrics"]["accuracy"] == 1.0 and tasks["avqa"]["metrics"]["accuracy"] == 1.0
    assert tasks["avc"]["metrics"]["bleu4"] > 0.99
    # ...and well above every trivial baseline.
    assert tasks["arig"]["baselines"]["centre box"]["ciou"] < 0.5
    assert tasks["avfc"]["baselines"]["majority answer"]["accuracy"] < 1.0
    assert tasks["avc"]["metrics"]["cider"] > 2 * tasks["avc"]["baselines"]["constant caption"]["cider"]
    assert all("scores" in r and "parsed" in r for r in rows)


@pytest.mark.slow
def test_evaluate_writes_the_full_report_and_resumes(world, checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    samples = _lines(world)
    data = _write(tmp_path / "test.jsonl", samples + [_as_task(samples[0], "classify")])
    results = eval_run.evaluate(str(checkpoint), [str(data)], str(world), str(out), limit=2,
                                batch_size=4, max_new_tokens=8)
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "report.md", "predictions.jsonl", "generation.json", "scores.png", "arig_success.png",
            "arig_iou_hist.png", "arig_examples.png", "igatl_timelines.png"} <= names
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert {t: e["n"] for t, e in saved["tasks"].items()} == {t: 2 for t in TASKS}
    assert saved["overall"]["n"] == 10
    # The row of a task eval does not score is said, kept in metrics.json and in the report.
    skipped = "skipped 1 samples of tasks eval does not score: classify 1"
    assert skipped in capsys.readouterr().err
    assert saved["run"]["unscored"] == {"classify": 1} and saved["run"]["max_new_tokens"]["avc"] == 8
    # Every number in the report's table is the one in metrics.json.
    text = (out / "report.md").read_text()
    assert skipped in text
    assert report.table(saved) in text
    for task, entry in saved["tasks"].items():
        assert f"{entry['metrics'][report.METRICS[task][0][0]]:.3f}" in text
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and {"prompt", "raw", "parsed", "target", "scores"} <= set(rows[0])
    assert "<image>" not in rows[0]["prompt"]

    # A rerun without --resume refuses to overwrite; with it, only the missing answers are generated.
    with pytest.raises(FileExistsError, match="--resume"):
        eval_run.evaluate(str(checkpoint), [str(data)], str(world), str(out), limit=2)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:7]) + '{"id": "cut')
    asked = []
    from meerkat.chat import Meerkat

    original = Meerkat.generate_batch
    monkeypatch.setattr(Meerkat, "generate_batch", lambda self, requests, **kw: asked.extend(requests) or original(self, requests, **kw))
    resumed = eval_run.evaluate(str(checkpoint), [str(data)], str(world), str(out), limit=2,
                                resume=True, batch_size=4, max_new_tokens=8)
    assert len(asked) == 3 and resumed["overall"]["n"] == 10
    # A resumed run over fewer tasks reports those, and keeps the other answers in predictions.jsonl.
    arig_only = eval_run.evaluate(str(checkpoint), [str(data)], str(world), str(out), tasks=["arig"],
                                  limit=2, resume=True, max_new_tokens=8)
    assert list(arig_only["tasks"]) == ["arig"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 10
    assert [r["raw"] for r in rows[:7]] == [json.loads(line)["raw"] for line in
                                            (out / "predictions.jsonl").read_text().splitlines()][:7]


def test_cli_reports_bad_arguments(world, checkpoint, tmp_path, capsys):
    assert eval_run.main(["--checkpoint", str(checkpoint), "--data", str(world / "test.jsonl"), "--media-root",
                          str(world), "--out", str(tmp_path / "r"), "--tasks", "arig,avx"]) == 2
    assert "unknown task(s) ['avx']" in capsys.readouterr().err
    assert eval_run.main(["--checkpoint", str(checkpoint), "--data", str(tmp_path / "missing.jsonl"), "--media-root",
                          str(world), "--out", str(tmp_path / "r")]) == 2
    assert "instruction file not found" in capsys.readouterr().err


def test_cli_refuses_counts_below_one_before_writing_anything(world, checkpoint, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["--checkpoint", str(checkpoint), "--data", str(world / "test.jsonl"), "--media-root", str(world),
            "--out", str(out)]
    for flag in ("--batch-size", "--limit", "--max-new-tokens"):
        with pytest.raises(SystemExit) as stop:
            eval_run.main(args + [flag, "0"])
        assert stop.value.code == 2 and f"argument {flag}: must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        eval_run.evaluate(str(checkpoint), [str(world / "test.jsonl")], str(world), str(out), batch_size=0)
    assert not out.exists()


def test_a_checkpoint_that_does_not_load_leaves_no_report_folder(world, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["--data", str(world / "test.jsonl"), "--media-root", str(world), "--out", str(out), "--limit", "1"]
    assert eval_run.main(["--checkpoint", str(tmp_path / "missing")] + args) == 2
    assert f"checkpoint folder not found: {tmp_path / 'missing'}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert eval_run.main(["--checkpoint", str(tmp_path / "empty")] + args) == 2
    assert "is not a Meerkat checkpoint" in capsys.readouterr().err
    assert not out.exists()


def test_tasks_eval_does_not_score_are_counted_and_unknown_tasks_refused(world, tmp_path):
    samples = _lines(world)
    data = _write(tmp_path / "mixed.jsonl", samples[:5] + [_as_task(samples[0], "classify"),
                                                          _as_task(samples[1], "caption_audio"),
                                                          _as_task(samples[2], "classify")])
    kept, unscored = eval_run.load_samples([str(data)], ["arig", "igatl"], None)
    # avfc, avqa and avc were not asked for: left out, not reported; classify and caption_audio are counted.
    assert [s["task"] for s in kept] == ["arig", "igatl"]
    assert unscored == {"classify": 2, "caption_audio": 1}
    assert [s["location"] for s in kept] == [f"{data.resolve()}:1", f"{data.resolve()}:2"]
    assert report.unscored(unscored) == "skipped 3 samples of tasks eval does not score: caption_audio 1, classify 2"

    typos = _write(tmp_path / "typos.jsonl", [samples[0], _as_task(samples[0], "arg"), _as_task(samples[1], "avsd")])
    with pytest.raises(ValueError) as error:
        eval_run.load_samples([str(data), str(typos)], list(TASKS), None)
    message = str(error.value)
    assert message.startswith("3 sample(s) with a task the instruction format does not know")
    assert f"{typos}:1: sample {samples[0]['id']}: id: also at {data}:1" in message  # answers are kept by id
    assert f"{typos}:2: sample {samples[0]['id']}/arg: task: 'arg'" in message
    assert f"{typos}:3: sample {samples[1]['id']}/avsd: task: 'avsd'" in message


def test_samples_that_cannot_be_asked_stop_the_run_before_any_answer(world, checkpoint, tmp_path):
    samples = _lines(world)
    first = _write(tmp_path / "first.jsonl", samples[:2])
    second = _write(tmp_path / "second.jsonl", [samples[2], dict(samples[3], image="images/nope.png"),
                                                 dict(samples[4], audio="../../etc/passwd")])
    out = tmp_path / "r"
    with pytest.raises(ValueError) as error:
        eval_run.evaluate(str(checkpoint), [str(first), str(second)], str(world), str(out))
    lines = str(error.value).splitlines()
    assert lines[0] == "2 sample(s) cannot be asked; nothing was generated:"
    assert lines[1] == f"  {second}:2: sample {samples[3]['id']}: image: no media file at {world / 'images/nope.png'}"
    assert lines[2].startswith(f"  {second}:3: sample {samples[4]['id']}: audio: media path '../../etc/passwd'")
    assert "outside the root" in lines[2] and len(lines) == 3
    assert not out.exists()


def test_media_that_fails_to_decode_names_its_sample_and_keeps_earlier_answers(world, tmp_path):
    """A file that exists but is not an image is only found when the model reads it."""
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "good.png")
    (root / "bad.png").write_bytes(b"not a png")
    sample = _lines(world)[0]
    samples = [dict(sample, id=f"s{i}", image=name, audio=None, location=f"test.jsonl:{i + 1}",
                    conversations=[{"role": "user", "content": "<image>\nWhere?"}])
               for i, name in enumerate(["good.png", "bad.png", "good.png"])]
    stub = SimpleNamespace(generate_batch=lambda requests, **kw: [SimpleNamespace(text=str(load_image(r["image"]).size))
                                                                  for r in requests])
    path = tmp_path / "predictions.jsonl"
    requests = eval_run.requests_of(samples, str(root))
    with pytest.raises(MediaError, match=r"^test.jsonl:2: sample s1: cannot decode image .*bad.png.*--resume"):
        eval_run.generate(stub, samples, requests, path, 1, eval_run.MAX_NEW_TOKENS)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["s0"]


def test_resume_refuses_answers_of_another_checkpoint_or_settings(world, checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    out = tmp_path / "r"
    out.mkdir()
    answers = '{"id": "x", "task": "arig", "raw": "[0, 0, 1, 1]"}\n'
    (out / "predictions.jsonl").write_text(answers)
    data = [str(world / "test.jsonl")]

    def resume(ckpt: Path, **settings):
        return eval_run.evaluate(str(ckpt), data, str(world), str(out), resume=True, **settings)

    with pytest.raises(ValueError, match="has no generation.json"):
        resume(checkpoint)
    (out / "generation.json").write_text(json.dumps(eval_run.generation_settings(str(checkpoint), None, None)))
    with pytest.raises(ValueError, match="--resume would mix answers") as error:
        resume(other)
    assert f"checkpoint: '{checkpoint.resolve()}' then, '{other.resolve()}' now" in str(error.value)
    with pytest.raises(ValueError, match="max_new_tokens: .*'avqa': 24.* then, .*'avqa': 8.* now"):
        resume(checkpoint, max_new_tokens=8)
    with pytest.raises(ValueError, match="dtype: None then, 'bfloat16' now"):
        resume(checkpoint, dtype="bfloat16")
    # The same folder with new weights in it (a retrain) is another checkpoint too.
    weights = next(checkpoint.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        with pytest.raises(ValueError, match="checkpoint_files: '[0-9a-f]+' then, '[0-9a-f]+' now"):
            resume(checkpoint)
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (out / "predictions.jsonl").read_text() == answers
    # A run stopped before its first answer has nothing to mix: it resumes, with any checkpoint.
    (out / "predictions.jsonl").write_text("")
    resumed = resume(other, tasks=["avfc"], limit=1, max_new_tokens=2)
    assert resumed["overall"]["n"] == 1
    assert json.loads((out / "generation.json").read_text())["checkpoint"] == str(other.resolve())


def test_compare_puts_reports_side_by_side(oracle, tmp_path, capsys):
    results, _ = oracle
    worse = json.loads(json.dumps(results))
    worse["tasks"]["avfc"]["metrics"]["accuracy"] = 0.75
    for name, data in (("full", results), ("no_ot", worse)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(data))
    assert compare.main([str(tmp_path / "full"), str(tmp_path / "no_ot"), "--out", str(tmp_path / "c.md")]) == 0
    printed = capsys.readouterr().out
    assert "| task | metric | full | no_ot | change |" in printed
    assert "| AVFC | accuracy | 1.000 | 0.750 | -0.250 |" in printed
    assert (tmp_path / "c.md").read_text().strip() == printed.strip()
    assert compare.main([str(tmp_path / "missing")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
