"""The demo LLM's text pretraining: fact-check text from shuffled records, verdicts that flip, weights
that load back through `llm.weights`."""

import random
import re

import pytest
import torch

from demo import llm as text
from eval.answers import parse
from instruct_data.synth import world
from meerkat.config import get_preset
from meerkat.model import MeerkatModel


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    world.generate(root, 40, seed=5, workers=1)
    return text.train_records(root)


def test_shuffled_renames_every_class_by_one_permutation_and_keeps_the_layout(records):
    record = next(r for r in records if len(r.visible_labels) > 1)
    renamed = text.shuffled(record, random.Random(0))
    names = dict(zip(record.visible_labels, renamed.visible_labels))
    assert renamed.label == names[record.label] and len(set(names.values())) == len(names)
    assert [o["class"] for o in renamed.extra["objects"]] == [names[o["class"]] for o in record.extra["objects"]]
    assert [o["box"] for o in renamed.extra["objects"]] == [o["box"] for o in record.extra["objects"]]
    assert renamed.boxes == record.boxes and renamed.segments == record.segments
    assert {text.shuffled(record, random.Random(seed)).label for seed in range(40)} > {record.label}


def test_samples_are_fact_checks_without_media_whose_verdict_is_the_target(records):
    drawn = [s for s, _ in zip(text.samples(records, random.Random(1)), range(200))]
    assert {target["fact_type"] for _, _, target in drawn} == {1, 2, 3, 4}
    assert 0.35 < sum(target["truth"] for _, _, target in drawn) / len(drawn) < 0.65
    for prompt, answer, target in drawn:
        assert "<image>" not in prompt and "<audio>" not in prompt and target["statement"] in prompt
        assert parse("avfc", answer, target) is target["truth"]
        assert parse("avfc", text.opposite(answer), target) is (not target["truth"])
        assert text.opposite(text.opposite(answer)) == answer


def test_opposite_names_text_that_is_not_a_fact_check():
    with pytest.raises(ValueError, match="not an AVFC answer: 'left'"):
        text.opposite("left")


def test_pretraining_lowers_the_loss_and_the_weights_load_back_through_llm_weights(records, tmp_path, capsys):
    cfg = get_preset("small")
    model = MeerkatModel.build(cfg)
    losses = text.pretrain(model.llm, model.tokenizer, records, steps=200)
    assert len(losses) == 2 and losses[1] < losses[0] / 2  # from ~ln(1024) to the unpredictable reason
    accuracy = text.verdict_accuracy(model.llm, model.tokenizer, [s for s, _ in zip(text.samples(records, random.Random(2)), range(60))])
    assert set(accuracy) <= {1, 2, 3, 4} and all(0 <= a <= 1 for a in accuracy.values())

    world.generate(tmp_path / "world", 30, seed=6, workers=1)
    text.main(["--world", str(tmp_path / "world"), "--out", str(tmp_path / "out"), "--steps", "100", "--val", "20"])
    printed = capsys.readouterr().out
    assert re.search(r"loss per 100 steps: \d+\.\d{3}; \d+ s → .*llm\.safetensors", printed)
    assert "val (20 statements): the right verdict preferred, by fact type: " in printed
    cfg.llm.weights = str(tmp_path / "out" / "llm.safetensors")
    loaded = MeerkatModel.build(cfg).llm.state_dict()
    fresh = MeerkatModel.build(get_preset("small")).llm.state_dict()
    assert loaded.keys() == fresh.keys()
    assert not torch.equal(loaded["model.layers.0.self_attn.q_proj.weight"], fresh["model.layers.0.self_attn.q_proj.weight"])
    from safetensors.torch import load_file
    saved = load_file(cfg.llm.weights)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_llm_weights_must_exist_and_not_come_with_a_path(tmp_path):
    cfg = get_preset("small")
    cfg.llm.weights = str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match=r"llm\.weights: .*missing\.safetensors does not exist; write it with `python -m demo\.llm`"):
        MeerkatModel.build(cfg)
    with pytest.raises(ValueError, match="set one of them"):
        type(cfg.llm)(path=str(tmp_path), weights=str(tmp_path / "llm.safetensors"))


def test_main_refuses_a_preset_whose_llm_is_pretrained(tmp_path):
    with pytest.raises(SystemExit, match="only a preset that trains its LLM in full"):
        text.main(["--world", str(tmp_path), "--out", str(tmp_path), "--preset", "tiny"])
