from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig

from meerkat import MeerkatModel
from meerkat.config import get_preset
from train.config import load_config
from train.memory import GiB, StepMemory, activation_bytes, choose_checkpointing, step_memory

LLAMA2_7B = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32)


def test_llama2_7b_activations_match_the_measured_step():
    """bench/RESULTS.md: 34.2 GiB peak at 4 × 1024 tokens in bf16, of which 12.6 GiB are the weights."""
    estimate = activation_bytes(LLAMA2_7B, tokens=4 * 1024, element_size=2) / GiB
    assert estimate == pytest.approx(20.75, abs=0.01)
    assert abs(estimate - (34.2 - 12.6)) / (34.2 - 12.6) < 0.05
    assert activation_bytes(LLAMA2_7B, 8 * 2048, 2) == 4 * activation_bytes(LLAMA2_7B, 4 * 1024, 2)


def test_step_memory_counts_optimizer_state_for_trained_parameters_only():
    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 4))
    model[0].requires_grad_(False)
    memory = step_memory(model, LLAMA2_7B, tokens=0, element_size=2)
    assert memory.weights == (110 + 44) * 4 and memory.optimizer == 44 * (4 + 8) and memory.activations == 0
    assert memory.total == memory.weights + memory.optimizer


def test_auto_checkpoints_only_when_the_step_does_not_fit():
    memory = StepMemory(weights=13 * GiB, optimizer=1 * GiB, activations=41 * GiB)  # 55 GiB
    assert choose_checkpointing("auto", memory, 79 * GiB) == (
        0, "auto: the step's estimated 55.0 GiB (weights 13.0 GiB, optimizer 1.0 GiB, activations 41.0 GiB) fits in 90% of "
        "79.0 GiB")
    assert choose_checkpointing("auto", memory, None) == (0, "auto: no GPU memory to fit and no memory_budget_gib")
    assert choose_checkpointing(True, memory, 1000 * GiB) == (1, "set in the config")
    assert choose_checkpointing(False, memory, 1 * GiB) == (0, "set in the config")
    assert choose_checkpointing(4, memory, 1 * GiB) == (4, "set in the config")


def test_checkpointing_every_nth_layer_keeps_the_others_activations_and_one_recomputed_layer():
    tokens = 4 * 1024
    memory = StepMemory(weights=13 * GiB, optimizer=1 * GiB, activations=activation_bytes(LLAMA2_7B, tokens, 2),
                        layers=32, layer_input=tokens * 4096 * 2)
    per_layer, layer_input = memory.activations // 32, 32 * 2**20  # 0.65 GiB and 32 MiB per layer
    assert memory.checkpointed(1).activations == 31 * layer_input + per_layer  # layer 31 recomputed last
    assert memory.checkpointed(2).activations == 16 * per_layer + 16 * layer_input  # layers 0, 2, …, 30
    assert memory.checkpointed(3).activations == 21 * per_layer + 11 * layer_input  # layers 0, 3, …, 30
    assert memory.checkpointed(31).activations == 31 * per_layer + layer_input  # layers 0 and 31
    assert memory.checkpointed(32).activations == 31 * per_layer + layer_input  # layer 0
    # 34.75 GiB does not fit in 90 % of 30 GiB; one layer in 2 checkpointed (24.9 GiB) fits, one in 3 (28.0) does not
    every, why = choose_checkpointing("auto", memory, 30 * GiB)
    assert every == 2 and memory.checkpointed(3).total > 0.9 * 30 * GiB >= memory.checkpointed(2).total
    assert why.endswith("exceeds 90% of 30.0 GiB, and is 24.9 GiB with these layers checkpointed")
    every, why = choose_checkpointing("auto", memory, 15 * GiB)  # even every layer leaves 15.6 GiB
    assert every == 1 and why.endswith("and is 15.6 GiB with these layers checkpointed: still more")


def test_a_bad_checkpointing_setting_is_named():
    for bad in ("sometimes", "0.5", "-2"):
        with pytest.raises(ValueError, match=f"gradient_checkpointing: expected true, false, auto or a positive n "
                                             rf"\(every n-th decoder layer\), got '?{bad}'?"):
            load_config(None, [f"gradient_checkpointing={bad}"])
    assert load_config(None, ["gradient_checkpointing=3"]).gradient_checkpointing == 3
    assert load_config(None, []).gradient_checkpointing == "auto" and get_preset("tiny").llm.dtype == "float32"


def test_the_recipe_checkpoints_the_layers_the_budget_needs(layer_runs, tiny_model, batch):
    from train.sft import longest_step_memory, set_checkpointing

    sampler = SimpleNamespace(lengths=[120, 300])  # the longest sample sizes the step
    memory = longest_step_memory(load_config(None, []), tiny_model, sampler)
    just_one = (memory.checkpointed(2).total / 0.9 + 1) / GiB  # fits with layer 0 of 2 checkpointed, not without
    for overrides, runs, says in (
            ([], [1, 1], "off"), (["memory_budget_gib=1000"], [1, 1], "off"),
            ([f"memory_budget_gib={just_one}"], [2, 1], "1 layer in 2 (1 of 2)"),
            (["memory_budget_gib=0.001"], [2, 2], "every layer"), (["gradient_checkpointing=true"], [2, 2], "every layer"),
            (["gradient_checkpointing=2"], [2, 1], "1 layer in 2 (1 of 2)")):
        model = MeerkatModel.build(get_preset("tiny"))
        line = set_checkpointing(load_config(None, overrides), model, sampler, torch.device("cpu"))
        assert line.startswith(f"gradient checkpointing: {says} (")
        decoder = model.llm.get_decoder()
        calls = [layer_runs(decoder, layer) for layer in (0, 1)]
        model(**batch).loss.backward()  # the tiny preset's batch: every tiny build has the same vocabulary
        assert [len(c) for c in calls] == runs, overrides


def test_the_recipe_counts_a_4bit_llm_s_activations_in_float32():
    """peft's k-bit preparation makes the residual stream float32, so a QLoRA step keeps float32 activations
    even with bf16 compute (checked on the CPU in stop 24: every tensor saved for backward is float32)."""
    from train.sft import longest_step_memory

    cfg = load_config(None, ["mixed_precision=bf16", "model.llm.dtype=bfloat16"])
    sampler = SimpleNamespace(lengths=[1024])
    sizes = {}
    for four_bit in (False, True):
        model_cfg = cfg.model_config()
        model_cfg.llm.load_in_4bit = four_bit
        model = SimpleNamespace(config=model_cfg, llm=SimpleNamespace(config=LLAMA2_7B), parameters=lambda: [])
        sizes[four_bit] = longest_step_memory(cfg, model, sampler).activations
    tokens = cfg.batch_size * min(cfg.max_length, 1024)
    assert sizes[False] == activation_bytes(LLAMA2_7B, tokens, 2) and sizes[True] == 2 * sizes[False]
