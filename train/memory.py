"""`gradient_checkpointing: auto` — checkpoint only as many decoder layers as the step needs to fit.

A checkpointed layer keeps only its input and recomputes the rest in the backward pass: about a third
more compute for that layer, so "auto" checkpoints none when the step fits and otherwise every n-th layer
(transformers' `every_n_layers`) for the largest n that fits, down to every layer. The estimate is the
parameters, what AdamW keeps for the trained ones, and the activations of the longest step the data can
make.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    activations: int  # kept for the backward pass: without checkpointing as step_memory estimates it
    layers: int = 1  # decoder layers
    layer_input: int = 0  # bytes of one decoder layer's input: all a checkpointed layer keeps

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.activations

    def checkpointed(self, every: int) -> StepMemory:
        """The step with every `every`-th decoder layer checkpointed (layers 0, every, 2·every, …): those
        keep their input, the others all their activations. The backward pass recomputes a layer after the
        layers above it have freed theirs, so only a checkpointed last layer adds to what is kept."""
        checkpointed = -(-self.layers // every)
        per_layer = self.activations // self.layers
        kept = (self.layers - checkpointed) * per_layer + checkpointed * self.layer_input
        last_recomputed = (self.layers - 1) % every == 0
        return replace(self, activations=kept + (per_layer - self.layer_input if last_recomputed else 0))

    def __str__(self) -> str:
        return (f"{size(self.total)} (weights {size(self.weights)}, optimizer {size(self.optimizer)}, "
                f"activations {size(self.activations)})")


def size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"


def step_memory(model: torch.nn.Module, llm_config, tokens: int, element_size: int) -> StepMemory:
    params = list(model.parameters())
    return StepMemory(weights=sum(p.numel() * p.element_size() for p in params),
                      optimizer=sum(p.numel() * (p.element_size() + 8) for p in params if p.requires_grad),
                      activations=activation_bytes(llm_config, tokens, element_size),
                      layers=llm_config.num_hidden_layers, layer_input=tokens * llm_config.hidden_size * element_size)


def choose_checkpointing(setting: bool | int | str, memory: StepMemory, budget: int | None) -> tuple[int, str]:
    """(which layers to checkpoint — every n-th, 0 for none — and why) for `setting` True (every layer),
    False, n, or "auto"; `budget` is the bytes the step may use (None: unknown, so "auto" checkpoints none)."""
    if setting != "auto":
        return int(setting), "set in the config"
    if budget is None:
        return 0, "auto: no GPU memory to fit and no memory_budget_gib"
    limit = HEADROOM * budget
    estimate = f"the step's estimated {memory}"
    if memory.total <= limit:
        return 0, f"auto: {estimate} fits in {HEADROOM:.0%} of {size(budget)}"
    every = next((n for n in range(memory.layers, 0, -1) if memory.checkpointed(n).total <= limit), 1)
    after = memory.checkpointed(every).total
    return every, (f"auto: {estimate} exceeds {HEADROOM:.0%} of {size(budget)}, and is {size(after)} with these "
                   f"layers checkpointed{'' if after <= limit else ': still more'}")


def layers_text(every: int, layers: int) -> str:
    """Which layers checkpointing every `every`-th of `layers` covers, as the run's log says it."""
    return "every layer" if every == 1 else f"1 layer in {every} ({-(-layers // every)} of {layers})"
