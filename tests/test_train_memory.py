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
        False, "auto: the step's estimated 55.0 GiB (weights 13.0 GiB, optimizer 1.0 GiB, activations 41.0 GiB) fits in 90% of "
        "79.0 GiB")
    on, why = choose_checkpointing("auto", memory, 40 * GiB)
    assert on and why.endswith("exceeds 90% of 40.0 GiB")
    assert choose_checkpointing("auto", memory, None) == (False, "auto: no GPU memory to fit and no memory_budget_gib")
    assert choose_checkpointing(True, memory, 1000 * GiB) == (True, "set in the config")
    assert choose_checkpointing(False, memory, 1 * GiB) == (False, "set in the config")


def test_a_bad_checkpointing_setting_is_named():
    with pytest.raises(ValueError, match="gradient_checkpointing: expected true, false or auto, got 'sometimes'"):
        load_config(None, ["gradient_checkpointing=sometimes"])
    assert load_config(None, []).gradient_checkpointing == "auto" and get_preset("tiny").llm.dtype == "float32"


def test_the_recipe_turns_checkpointing_on_only_when_the_step_exceeds_the_budget():
    from train.sft import set_checkpointing

    sampler = SimpleNamespace(lengths=[120, 300])  # the longest sample sizes the step
    for overrides, on in (([], False), (["memory_budget_gib=1000"], False), (["memory_budget_gib=0.01"], True),
                          (["gradient_checkpointing=true"], True)):
        model = MeerkatModel.build(get_preset("tiny"))
        line = set_checkpointing(load_config(None, overrides), model, sampler, torch.device("cpu"))
        assert model.llm.is_gradient_checkpointing == on and line.startswith(f"gradient checkpointing: {'on' if on else 'off'}")
