"""CPU smoke of bench/train_step.py: both steps run and the table it prints holds real figures."""

import importlib.util
import re
from pathlib import Path

import pytest
import torch

SPEC = importlib.util.spec_from_file_location("train_step", Path(__file__).parent.parent / "bench" / "train_step.py")
train_step = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(train_step)


def test_bench_prints_both_steps_and_their_ratio(capsys):
    train_step.main(["--steps", "1", "--warmup", "0", "--seq", "128", "--batch", "2"])
    out = capsys.readouterr().out
    plain = float(re.search(r"\(a\) transformers \+ peft, LLM only\s+([\d,]+)", out).group(1).replace(",", ""))
    ours = float(re.search(r"\(b\) Meerkat step \(towers, OT, AC\)\s+([\d,]+)", out).group(1).replace(",", ""))
    ratio = float(re.search(r"ratio \(b\)/\(a\) tokens/s: ([\d.]+)", out).group(1))
    assert plain > 0 and ours > 0 and abs(ratio - ours / plain) < 0.02 + 0.01 * ratio
    assert "batch 2 x 128 tokens" in out and "OT + AC share of the Meerkat step" in out


def test_uneven_samples_add_a_packed_row_with_less_padding(capsys):
    train_step.main(["--steps", "1", "--warmup", "0", "--seq", "320", "--batch", "4", "--uneven"])
    out = capsys.readouterr().out
    assert "4 samples of 80–320 tokens" in out
    padding = {row: float(re.search(rf"{re.escape(row)}.*\s([\d.]+)%\n", out).group(1))
               for row in ("(a) transformers + peft, LLM only", "(b) Meerkat step (towers, OT, AC)", "(c) Meerkat step, packed")}
    # 80 + 160 + 240 + 320 = 800 real tokens: 4 rows of 320 padded (37.5 %); packed, 3 rows of 320
    # (320 | 240 | 160 + 80: 16.7 %)
    assert padding["(a) transformers + peft, LLM only"] == padding["(b) Meerkat step (towers, OT, AC)"] == 37.5
    assert padding["(c) Meerkat step, packed"] == 16.7
    assert re.search(r"ratio \(b\)/\(a\) tokens/s: [\d.]+; \(c\)/\(a\): [\d.]+", out)


def test_meerkat_items_place_media_tokens_and_answer_labels(tiny_model):
    batch = tiny_model.processor.collate(train_step.meerkat_items(tiny_model, [100, 100], 0.25))
    ids, labels = batch["input_ids"], batch["labels"]
    ni, na = tiny_model.vision.num_tokens, tiny_model.audio.num_tokens
    assert ids.shape == (2, 100) and (ids[:, :ni] == tiny_model.image_token_id).all()
    assert (ids[:, ni:ni + na] == tiny_model.audio_token_id).all()
    assert ((labels != -100).sum(1) == 25).all() and torch.equal(labels[:, -25:], ids[:, -25:])
    out = tiny_model(**batch)
    assert torch.isfinite(out.loss) and out.ot_loss > 0 and out.ac_loss > 0
    short, = train_step.meerkat_items(tiny_model, [ni + na + 5], 0.5)  # half would reach the audio tokens
    assert (short["labels"] != -100).sum() == 4 and (short["labels"][: ni + na + 1] == -100).all()


def test_padding_share_of_packed_batches_is_at_most_that_of_padded_ones(tmp_path, tiny_model):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "instruct_data", "synth", "--out", str(tmp_path), "--n", "12", "--seed", "0"],
                   check=True, capture_output=True)
    padded, packed = train_step.padding_share(tiny_model, str(tmp_path / "train.jsonl"), str(tmp_path), batch=8)
    assert 0 < padded < 1 and 0 <= packed <= padded


@pytest.mark.slow
def test_compile_adds_a_row_timed_on_the_compiled_decoder(capsys):
    torch._dynamo.reset()
    train_step.main(["--steps", "1", "--warmup", "1", "--seq", "128", "--batch", "2", "--compile"])
    out = capsys.readouterr().out
    compiled = float(re.search(r"\(d\) Meerkat step, compiled decoder\s+([\d,]+)", out).group(1).replace(",", ""))
    assert compiled > 0 and re.search(r"ratio \(b\)/\(a\) tokens/s: [\d.]+; \(d\)/\(a\): [\d.]+", out)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo captured the decoder


def test_checkpointing_runs_the_meerkat_step_with_it_and_says_so(capsys, monkeypatch, layer_runs):
    built = []
    build = train_step.MeerkatModel.build
    monkeypatch.setattr(train_step.MeerkatModel, "build", staticmethod(lambda cfg: built.append(build(cfg)) or built[-1]))
    train_step.main(["--steps", "1", "--warmup", "0", "--seq", "128", "--batch", "2", "--checkpointing"])
    out = capsys.readouterr().out
    assert "float32, gradient checkpointing; batch 2 x 128 tokens" in out
    # the bench's model recomputes its layers in a step (the flag alone stays set in eval mode, where
    # transformers does not checkpoint: how the 2026-11-28 QLoRA rows ran unchecked)
    model = built[0]
    calls = layer_runs(model.llm.get_decoder())
    train_step.meerkat_step_fn(model, model.processor.collate(train_step.meerkat_items(model, [128, 96], 0.25)))()
    assert len(calls) == 2
    assert float(re.search(r"\(b\) Meerkat step \(towers, OT, AC\)\s+([\d,]+)", out).group(1).replace(",", "")) > 0


def test_qlora_baseline_recomputes_its_4bit_layers_under_checkpointing(tmp_path, layer_runs):
    """The plain side loads its 4-bit LLM with `from_pretrained` (eval mode, where checkpointing does
    nothing): its step must still recompute every layer in the backward pass."""
    device = torch.device("cpu")
    cfg = train_step.config("tiny", None, "float32")
    train_step.save_random_llm(cfg, str(tmp_path), device)
    step, llm = train_step.plain_step_fn(cfg, [64, 48], device, checkpointing=True)
    decoder = llm.get_base_model().model
    calls = layer_runs(decoder)
    step()
    assert len(calls) == 2
    assert type(decoder.layers[0].mlp.up_proj).__name__ == "Linear4bit"


def test_qlora_rows_run_on_a_cpu(capsys):
    train_step.main(["--qlora", "--checkpointing", "--steps", "1", "--warmup", "0", "--seq", "96", "--batch", "2"])
    out = capsys.readouterr().out
    assert "4-bit NF4 (QLoRA), gradient checkpointing; batch 2 x 96 tokens" in out
    for row in ("(a) transformers + peft, LLM only", "(b) Meerkat step (towers, OT, AC)"):
        assert float(re.search(rf"{re.escape(row)}\s+([\d,]+)", out).group(1).replace(",", "")) > 0


def test_useful_flops_count_the_llm_parameters_of_its_config():
    cfg = train_step.config("tiny", None, "float32")
    hf = cfg.llm.hf_config
    per_layer = 4 * hf["hidden_size"] ** 2 + 3 * hf["hidden_size"] * hf["intermediate_size"] + 2 * hf["hidden_size"]
    expected = hf["num_hidden_layers"] * per_layer + 2 * hf["vocab_size"] * hf["hidden_size"] + hf["hidden_size"]
    assert train_step.llm_parameters(cfg) == expected


def test_profile_lists_the_operators_the_meerkat_step_spends_most_in(capsys):
    train_step.main(["--steps", "1", "--warmup", "0", "--seq", "128", "--batch", "2", "--profile", "5"])
    out = capsys.readouterr().out.split("where the time goes: CPU ms per operator")[1].splitlines()[2:]
    number = r"\s+(-?[\d.]+)\s+(-?[\d.]+)\s+([+-][\d.]+)$"
    rows = [re.match(rf"(\S.*?){number}", line).groups() for line in out[:7]]
    names = [r[0] for r in rows]
    a, b, diff = ([float(r[i]) for r in rows] for i in (1, 2, 3))
    # operators, or labelled regions with time of their own (the optimizer's step on a CPU)
    assert names[5:] == ["all other operators", "total"] and len(set(names[:5])) == 5
    assert any(n.startswith("aten::") and "conv" in n for n in names[:5])  # the towers', which (a) lacks
    assert b[:5] == sorted(b[:5], reverse=True) and b[0] > 0
    assert all(abs(d - (y - x)) < 0.11 for x, y, d in zip(a, b, diff))
    assert abs(sum(b[:6]) - b[6]) < 0.6 and abs(sum(a[:6]) - a[6]) < 0.6  # rows and rest add up to the total
    assert b[6] > a[6] > 0  # (b) runs (a)'s LLM plus the towers, projectors, OT and AC
