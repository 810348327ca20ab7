"""`gradient_checkpointing: auto` — checkpoint the decoder only when a step would not fit without it.

Checkpointing keeps each decoder layer's input and recomputes the rest in the backward pass: about a
third more compute per step, and worth it only when the step's activations would not fit. The estimate
is the parameters, what AdamW keeps for the trained ones, and the activations of the longest step the
data can make.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GiB = 2**30
HEADROOM = 0.9  # the allocator's fragmentation and the towers' transient activations are not in the estimate


def activation_bytes(llm_config, tokens: int, element_size: int) -> int:
    """Activations a Llama decoder keeps for the backward pass without checkpointing, with fused (SDPA)
    attention: per layer and token about 10·hidden values (norm inputs, q/k/v, attention output, the
    residuals) and 4·intermediate (the MLP's gate, up, activation and product) — 20.7 GiB for Llama-2-7B at
    4 × 1024 tokens in bf16, where the measured peak less the weights is 21.6 GiB (bench/RESULTS.md)."""
    per_token = 10 * llm_config.hidden_size + 4 * llm_config.intermediate_size
    return llm_config.num_hidden_layers * tokens * per_token * element_size


@dataclass
class StepMemory:
    weights: int
    optimizer: int  # gradients and AdamW's two float32 moments of the trained parameters
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.activations

    def __str__(self) -> str:
        return (f"{size(self.total)} (weights {size(self.weights)}, optimizer {size(self.optimizer)}, "
                f"activations {size(self.activations)})")


def size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"


def step_memory(model: torch.nn.Module, llm_config, tokens: int, element_size: int) -> StepMemory:
    params = list(model.parameters())
    return StepMemory(weights=sum(p.numel() * p.element_size() for p in params),
                      optimizer=sum(p.numel() * (p.element_size() + 8) for p in params if p.requires_grad),
                      activations=activation_bytes(llm_config, tokens, element_size))


def choose_checkpointing(setting: bool | str, memory: StepMemory, budget: int | None) -> tuple[bool, str]:
    """(whether to checkpoint, why) for `setting` True, False or "auto"; `budget` is the bytes the step
    may use (None: unknown, so "auto" leaves it off)."""
    if setting != "auto":
        return bool(setting), "set in the config"
    if budget is None:
        return False, "auto: no GPU memory to fit and no memory_budget_gib"
    fits = memory.total <= HEADROOM * budget
    verb = "fits in" if fits else "exceeds"
    return not fits, f"auto: the step's estimated {memory} {verb} {HEADROOM:.0%} of {size(budget)}"
