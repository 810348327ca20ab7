"""Fast decoding: a static KV cache and one compiled graph per generated token (the gpt-fast recipe).

`transformers`' `generate` runs its logits processors, stopping criteria and input preparation in Python
at every token and grows the attention mask by one column per step, so a compiled forward would see a
new shape each step. Here every decode step has the same shapes — the mask spans the whole cache, the
cache slot comes in as a tensor — so the step compiles once (CUDA graphs on a GPU) and the loop around it
only picks the next token. At batch 1 every linear layer is a matrix-vector product, which cuBLAS runs
below the memory bandwidth; inductor turns those into tuned Triton reductions when coordinate-descent
tuning is on (gpt-fast's setting; torch/_inductor/decomposition.py: "Our matrix vector multiplies only
achieve peak bandwidth with coordinate descent tuning"), so `tune_gemv` turns it on. The end-of-sequence
check needs a GPU→CPU copy, so it runs every `check_every` tokens; rows that finished are padded like
`generate` pads them.

Greedy outputs equal `generate`'s (tests/test_decoding.py); speed is in bench/decode.py.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import StaticCache


class StaticDecoder:
    """Decodes with `llm` from prompt embeddings; reuses its cache while batch size and length fit."""

    def __init__(self, llm: nn.Module, compile: bool | None = None, check_every: int = 16, tune_gemv: bool = True):
        self.llm = llm
        # torch.compile pays off where kernel launches dominate: on a GPU; on a CPU the eager step is used
        self.compile = next(llm.parameters()).is_cuda if compile is None else compile
        self.check_every = check_every
        self._cache: StaticCache | None = None
        self._shape: tuple[int, int] | None = None
        self._cache_keyword = _cache_keyword(llm)
        self._step = self._forward
        if self.compile:
            # mode="reduce-overhead" is {"triton.cudagraphs": True}; a mode and options do not mix
            options = {"triton.cudagraphs": True, "coordinate_descent_tuning": tune_gemv}
            self._step = torch.compile(self._forward, options=options, fullgraph=True)

    def _forward(self, tokens, position_ids, cache_position, mask):
        return self.llm(input_ids=tokens, position_ids=position_ids, cache_position=cache_position, attention_mask=mask,
                        use_cache=True, **{self._cache_keyword: self._cache}).logits[:, -1]

    def _reset_cache(self, batch: int, length: int) -> None:
        """A cache for `batch` rows of `length` positions; kept (zeroed) for later calls of the same size,
        so the compiled step and its CUDA graph are reused."""
        if self._shape != (batch, length):
            self._cache = StaticCache(config=self.llm.config, max_cache_len=length)
            self._shape = (batch, length)
        else:
            self._cache.reset()

    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                 eos_token_id: int, pad_token_id: int, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, min_new_tokens: int = 0, length_bucket: int = 256) -> torch.Tensor:
        """New token ids (batch, ≤ max_new_tokens) after left-padded prompts, from `generate`'s keyword
        arguments; rows past their end-of-sequence hold `pad_token_id`. The cache length is rounded up to
        `length_bucket` so that prompts of similar length share one compiled step."""
        batch, prompt_len = attention_mask.shape
        device = inputs_embeds.device
        length = -(-(prompt_len + max_new_tokens) // length_bucket) * length_bucket
        self._reset_cache(batch, length)
        mask = torch.zeros(batch, length, dtype=attention_mask.dtype, device=device)
        mask[:, :prompt_len] = attention_mask
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        logits = self.llm(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions,
                          cache_position=torch.arange(prompt_len, device=device), use_cache=True, logits_to_keep=1,
                          **{self._cache_keyword: self._cache}).logits[:, -1]
        next_position = positions[:, -1:] + 1
        generated = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        slot = torch.tensor([prompt_len], device=device)  # the cache slot, advanced on the device: no copy per token
        steps = max_new_tokens
        for i in range(max_new_tokens):
            if i < min_new_tokens:
                logits[:, eos_token_id] = float("-inf")
            token = _choose(logits.float(), temperature if do_sample else 0.0, top_p)
            token = torch.where(finished, pad_token_id, token)
            generated[:, i] = token
            finished |= token == eos_token_id
            if (i + 1) % self.check_every == 0 and bool(finished.all()):
                steps = i + 1
                break
            if i + 1 == max_new_tokens:
                break
            mask[:, prompt_len + i] = 1
            logits = self._step(token[:, None], next_position, slot, mask).clone()
            next_position, slot = next_position + 1, slot + 1
        if bool(finished.all()):  # `generate` stops at the step where the last row ends
            steps = int((generated == eos_token_id).int().argmax(-1).max()) + 1
        return generated[:, :steps]


def _cache_keyword(llm: nn.Module) -> str:
    """The forward's name for the KV cache: transformers 5.25 renamed `past_key_values` to `cache` (the
    old name warns, and goes in 5.40); earlier versions, as on the GPU bench machine, know only the old."""
    model = llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # a peft model passes it through
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def _choose(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Greedy at temperature 0, else nucleus sampling: `generate`'s do_sample with temperature and top_p."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least the most likely token)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1).squeeze(-1)
