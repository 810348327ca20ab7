"""Counts and lengths of an instruction JSONL: what a mixture holds and how long its prompts get."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from instruct_data.mixture import read_jsonl
from instruct_data.validate import sample_problems
from meerkat.prompt import encode_chat

PERCENTILES = (50, 90, 99, 100)


def stats(path: Path, tokenizer: PreTrainedTokenizerBase, image_tokens: int, audio_tokens: int) -> str:
    """A printable report: samples per task and source, answer words and token lengths by percentile."""
    tasks, sources = Counter(), Counter()
    answer_words, tokens = [], []
    for sample in read_jsonl(path, sample_problems):  # the fields read below, checked as `validate` does
        tasks[sample["task"]] += 1
        sources[sample["source"]] += 1
        answer_words += [len(t["content"].split()) for t in sample["conversations"] if t["role"] == "assistant"]
        encoded = encode_chat(tokenizer, sample["conversations"], num_image_tokens=image_tokens,
                              num_audio_tokens=audio_tokens)
        tokens.append(len(encoded.input_ids))
    if not tokens:
        return f"{path}: no samples"
    lines = [f"{path}: {len(tokens)} samples", "per task:"]
    lines += [f"  {k:<16}{v}" for k, v in sorted(tasks.items())]
    lines.append("per source:")
    lines += [f"  {k:<16}{v}" for k, v in sorted(sources.items())]
    rows = (("answer words", answer_words), (f"tokens ({image_tokens} per image, {audio_tokens} per audio)", tokens))
    width = max(len(name) for name, _ in rows) + 2  # the token counts are part of the label: it has no fixed width
    header = "".join(f"{'p' + str(p) if p < 100 else 'max':>8}" for p in PERCENTILES)
    lines.append(f"{'':<{width}}{header}")
    for name, values in rows:
        row = "".join(f"{int(np.percentile(values, p)):>8}" for p in PERCENTILES)
        lines.append(f"{name:<{width}}{row}")
    return "\n".join(lines)
