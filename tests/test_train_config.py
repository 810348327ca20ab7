import json
from pathlib import Path

import pytest
import yaml

from train.config import load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "train" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_resolves_to_a_model_config(path):
    cfg = load_config(str(path), [])
    model = cfg.model_config()
    assert cfg.max_steps > 0 and cfg.batch_size > 0
    if path.name == "meerkat7b_stage1.yaml":
        assert model.llm.lora is None and model.loss.ot_weight == 0 and model.loss.ac_weight == 0
    if path.name == "meerkat7b_stage2.yaml":
        assert model.llm.lora.r == 32 and model.loss.ot_weight == 0.01 and cfg.init_from.endswith("stage1/final")
    if path.name == "meerkat7b_qlora.yaml":
        assert model.llm.load_in_4bit and model.llm.dtype == "bfloat16"


def test_overrides_reach_nested_model_fields_and_read_numbers():
    cfg = load_config(str(ROOT / "train/configs/tiny_synth.yaml"), ["lr=1e-4", "--max_steps", "7", "model.loss.ac_weight=0"])
    assert cfg.lr == 1e-4 and cfg.max_steps == 7 and cfg.model_config().loss.ac_weight == 0


@pytest.mark.parametrize(("overrides", "message"), [
    (["max_stpes=3"], r"unknown key\(s\) \['max_stpes'\]"),
    (["model.loss.ot_wieght=1"], r"config.loss: unknown key\(s\) \['ot_wieght'\]"),
    (["lr=fast"], r"train config.lr: expected a number, got 'fast'"),
    (["oops"], "write key=value or --key value"),
    (["packing=maybe"], r"train config.packing: expected true or false, got 'maybe'"),
    (["max_steps=2.5"], r"train config.max_steps: expected a whole number, got 2.5"),
    (["--max_steps"], r"train config.max_steps: expected a whole number, got True"),
    (["batch_size=0"], r"train config.batch_size: must be at least 1, got 0"),
    (["model.llm.lora.r=eight"], r"config.llm.lora.r: expected a number, got 'eight'"),
    (["mixed_precision=fp8"], r"mixed_precision: expected no, bf16 or fp16, got 'fp8'"),
    (["train_tasks={a: 1}"], r"train config.train_tasks: expected a list \(\[a, b\]\), got \{'a': 1\}"),
    (["model=3"], r"train config.model: expected a mapping, got 3"),
    (["model.llm.lora.target_modules=true"], r"config.llm.lora.target_modules: expected a list \(\[a, b\]\), got True"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
def test_deepspeed_configs_pair_an_accelerate_file_with_its_json(name):
    launch = yaml.safe_load((ROOT / "deepspeed_configs" / f"{name}.yaml").read_text())
    assert launch["distributed_type"] == "DEEPSPEED"
    ds = json.loads((ROOT / launch["deepspeed_config"]["deepspeed_config_file"]).read_text())
    assert ds["zero_optimization"]["stage"] == (2 if name == "zero2" else 3)
    assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"
    assert ("offload_optimizer" in ds["zero_optimization"]) == (name == "zero3_offload")


@pytest.mark.parametrize("overrides", [["--skip_bad_samples", "--max_steps=2"], ["--skip_bad_samples", "--max_steps", "2"],
                                       ["max_steps=2", "--skip_bad_samples"], ["--max_steps", "2", "--skip_bad_samples"],
                                       ["--skip_bad_samples", "max_steps=2"]])
def test_a_flag_alone_means_true_wherever_it_stands(overrides):
    cfg = load_config(None, overrides)
    assert cfg.skip_bad_samples is True and cfg.max_steps == 2


@pytest.mark.parametrize("overrides", [["mixed_precision=no"], ["--mixed_precision", "no"], ["mixed_precision=bf16", "mixed_precision=no"]])
def test_mixed_precision_no_stays_the_string_accelerate_takes(overrides):
    assert load_config(None, overrides).mixed_precision == "no"  # YAML reads `no` as false


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
def test_the_recipe_fills_the_deepspeed_auto_values_from_its_config(name):
    from train.sft import fill_deepspeed_auto

    ds = json.loads((ROOT / "deepspeed_configs" / f"{name}.json").read_text())
    cfg = load_config(None, ["batch_size=3", "max_grad_norm=0.25"])
    fill_deepspeed_auto(ds, cfg, hidden_size=64)
    # accelerate would fill an `auto` gradient_clipping with its own 1.0, whatever max_grad_norm says
    assert ds["gradient_clipping"] == 0.25 and ds["train_micro_batch_size_per_gpu"] == 3
    assert "auto" not in {ds["zero_optimization"].get(key) for key in ("reduce_bucket_size", "stage3_prefetch_bucket_size")}


def test_one_item_for_a_list_field_is_a_list_of_one():
    cfg = load_config(None, ["train_tasks=arig", "train_data=data/a.jsonl", "model.llm.lora.target_modules=q_proj"])
    assert cfg.train_tasks == ["arig"] and cfg.train_data == ["data/a.jsonl"]
    assert cfg.model_config().llm.lora.target_modules == ["q_proj"]
