import json
from pathlib import Path

import pytest

from eval import TASKS, compare, metrics, report
from eval import run as eval_run
from meerkat import MeerkatModel, get_preset


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
def test_evaluate_writes_the_full_report_and_resumes(world, checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "report"
    results = eval_run.evaluate(str(checkpoint), [str(world / "test.jsonl")], str(world), str(out), limit=2,
                                batch_size=4, max_new_tokens=8)
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "report.md", "predictions.jsonl", "scores.png", "arig_success.png", "arig_iou_hist.png",
            "arig_examples.png", "igatl_timelines.png"} <= names
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert {t: e["n"] for t, e in saved["tasks"].items()} == {t: 2 for t in TASKS}
    assert saved["overall"]["n"] == 10
    # Every number in the report's table is the one in metrics.json.
    text = (out / "report.md").read_text()
    assert report.table(saved) in text
    for task, entry in saved["tasks"].items():
        assert f"{entry['metrics'][report.METRICS[task][0][0]]:.3f}" in text
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and {"prompt", "raw", "parsed", "target", "scores"} <= set(rows[0])
    assert "<image>" not in rows[0]["prompt"]

    # A rerun without --resume refuses to overwrite; with it, only the missing answers are generated.
    with pytest.raises(FileExistsError, match="--resume"):
        eval_run.evaluate(str(checkpoint), [str(world / "test.jsonl")], str(world), str(out), limit=2)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:7]) + '{"id": "cut')
    asked = []
    from meerkat.chat import Meerkat

    original = Meerkat.generate_batch
    monkeypatch.setattr(Meerkat, "generate_batch", lambda self, requests, **kw: asked.extend(requests) or original(self, requests, **kw))
    resumed = eval_run.evaluate(str(checkpoint), [str(world / "test.jsonl")], str(world), str(out), limit=2,
                                resume=True, batch_size=4, max_new_tokens=8)
    assert len(asked) == 3 and resumed["overall"]["n"] == 10
    # A resumed run over fewer tasks reports those, and keeps the other answers in predictions.jsonl.
    arig_only = eval_run.evaluate(str(checkpoint), [str(world / "test.jsonl")], str(world), str(out), tasks=["arig"],
                                  limit=2, resume=True)
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


def test_media_outside_the_root_is_refused(world):
    sample = json.loads((world / "test.jsonl").read_text().splitlines()[0])
    sample["image"] = "../../etc/passwd"
    with pytest.raises(ValueError, match="outside the root"):
        eval_run.request(sample, str(world))


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
