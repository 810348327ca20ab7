"""Pretrain the small preset's LLM on text, standing in for Llama's pretraining.

    python -m demo.llm --world data/demo_world --out data/demo_world_encoders

Fact checking asks the LLM to compare: the statement names a class (a segment, a box), the answer states
what the model sees and hears, and the verdict is whether the two agree. A pretrained Llama brings that
skill; the demo's 4 × 128 Llama starts from random weights, and trained only on the instruction mixture
it never learned it — its val AVFC verdicts agreed with its own stated reason about half the time, at
any loss weight on the verdict. On text alone the same model learns the comparison only after ~3,000
steps of nothing else (the verdict jumps from chance to >90 % within a few hundred steps there), more
than the whole instruction budget. So, before stage 1, the demo trains it on AVFC statements and
answers made from the world's *train* records by the converter's own builder (`instruct_data.tasks.avfc`),
media left out and every sample's classes shuffled at random, so what is learned is the comparison, not
which class a scene has; the reason's class is then unpredictable from the text and only the verdict is
learnable. Held-out val records check it: the model must prefer the right verdict after the stated reason.
The weights go to `llm.safetensors`, which stage 1 loads through `llm.weights`.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from instruct_data import tasks, templates
from instruct_data.sources import synth
from instruct_data.sources.base import Record
from instruct_data.synth.world import CLASSES
from meerkat.config import get_preset
from meerkat.model import MeerkatModel
from meerkat.prompt import IGNORE_INDEX, encode_chat

# The verdict sentences, true and false, in parallel: answer i of one kind, with the other's suffix,
# is the same reason with the opposite verdict.
_ENDINGS = tuple(zip((a.replace("{reason}", "") for a in templates.AVFC_TRUE_ANSWERS),
                     (a.replace("{reason}", "") for a in templates.AVFC_FALSE_ANSWERS)))


def train_records(world: Path, split: str = "train") -> list[Record]:
    """The world's sounding-object records of one split (those AVFC is built from)."""
    return [row.value for row in synth.read(world, split) if isinstance(row.value, Record) and row.value.label]


def shuffled(record: Record, rng: random.Random) -> Record:
    """The record with its classes renamed by a random permutation: same layout, other names."""
    names = dict(zip(CLASSES, rng.sample(CLASSES, len(CLASSES))))
    objects = [{**o, "class": names[o["class"]]} for o in record.extra.get("objects", [])]
    return dataclasses.replace(record, label=names[record.label],
                               visible_labels=[names[c] for c in record.visible_labels or []],
                               extra={**record.extra, "objects": objects})


def samples(records: list[Record], rng: random.Random) -> Iterator[tuple[str, str, dict]]:
    """Endless (statement prompt, answer, target) triples: AVFC samples of shuffled records, no media."""
    pool = tasks.Pool(records, rng)
    while True:
        sample = tasks.avfc(shuffled(rng.choice(records), rng), pool, rng)
        prompt, answer = (turn["content"] for turn in sample["conversations"])
        yield prompt.replace("<image>\n", "").replace("<audio>\n", ""), answer, sample["target"]


def opposite(answer: str) -> str:
    """The same answer with the other verdict."""
    for true, false in _ENDINGS:
        if answer.endswith(true):
            return answer[: -len(true)] + false
        if answer.endswith(false):
            return answer[: -len(false)] + true
    raise ValueError(f"not an AVFC answer: {answer!r}")


def encode(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Ids and labels of one exchange, without the system prompt (it says nothing about verdicts)."""
    encoded = encode_chat(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                          num_image_tokens=0, num_audio_tokens=0, system=None)
    return encoded.input_ids, encoded.labels


def batch(pairs: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    length = max(len(ids) for ids, _ in pairs)
    out = {"input_ids": torch.full((len(pairs), length), pad_id), "labels": torch.full((len(pairs), length), IGNORE_INDEX),
           "attention_mask": torch.zeros(len(pairs), length, dtype=torch.long)}
    for row, (ids, labels) in enumerate(pairs):
        out["input_ids"][row, : len(ids)] = torch.tensor(ids)
        out["labels"][row, : len(ids)] = torch.tensor(labels)
        out["attention_mask"][row, : len(ids)] = 1
    return out


def answer_logprob(llm, tokenizer, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """Summed log-probability of each answer after its prompt."""
    encoded = batch([encode(tokenizer, p, a) for p, a in pairs], tokenizer.pad_token_id)
    with torch.no_grad():
        logits = llm(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits[:, :-1].float()
    targets = encoded["labels"][:, 1:]
    scored = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return (logp * scored).sum(1)


def verdict_accuracy(llm, tokenizer, held_out: list[tuple[str, str, dict]]) -> dict[int, float]:
    """Per fact type, how often the model scores the true answer above the same reason with the other verdict."""
    right: dict[int, list[bool]] = {}
    for start in range(0, len(held_out), 50):
        chunk = held_out[start:start + 50]
        given = answer_logprob(llm, tokenizer, [(p, a) for p, a, _ in chunk])
        flipped = answer_logprob(llm, tokenizer, [(p, opposite(a)) for p, a, _ in chunk])
        for (_, _, target), better in zip(chunk, (given > flipped).tolist()):
            right.setdefault(target["fact_type"], []).append(better)
    return {t: sum(v) / len(v) for t, v in sorted(right.items())}


def pretrain(llm, tokenizer, records: list[Record], steps: int, batch_size: int = 16, lr: float = 1e-3,
             seed: int = 0) -> list[float]:
    """`steps` AdamW steps on fresh AVFC text; returns the loss every 100 steps. A constant rate after a
    short warm-up: the comparison is learned in a late jump, which a decaying rate would slow."""
    rng = random.Random(seed)
    stream = samples(records, rng)
    optimizer = torch.optim.AdamW([p for p in llm.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 30))
    llm.train()
    losses, running = [], 0.0
    for step in tqdm(range(1, steps + 1), desc="LLM text pretraining", unit="step"):
        encoded = batch([encode(tokenizer, p, a) for p, a, _ in (next(stream) for _ in range(batch_size))],
                        tokenizer.pad_token_id)
        loss = llm(**encoded).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        if step % 100 == 0:
            losses.append(running / 100)
            running = 0.0
    llm.eval()
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, required=True, help="a folder from `python -m instruct_data synth`")
    parser.add_argument("--out", type=Path, required=True, help="folder for llm.safetensors")
    parser.add_argument("--preset", default="small", help="whose LLM to pretrain (its config builds the random init)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--val", type=int, default=400, help="held-out val statements to check the verdicts on; 0: none")
    args = parser.parse_args(argv)
    cfg = get_preset(args.preset)
    if not cfg.llm.train_base:
        raise SystemExit(f"preset {args.preset!r} tunes its LLM with LoRA on pretrained weights; only a preset that "
                         "trains its LLM in full from a random init (small) needs this")
    model = MeerkatModel.build(cfg)
    llm, tokenizer = model.llm, model.tokenizer
    start = time.perf_counter()
    losses = pretrain(llm, tokenizer, train_records(args.world), args.steps, seed=cfg.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "llm.safetensors"
    save_file({k: v.detach().contiguous() for k, v in llm.state_dict().items()}, str(path))
    print(f"loss per 100 steps: {' '.join(f'{x:.3f}' for x in losses)}; {time.perf_counter() - start:.0f} s → {path}")
    val = train_records(args.world, "val") if args.val else []
    if val:
        held_out = [s for s, _ in zip(samples(val, random.Random(cfg.seed + 1)), range(args.val))]
        accuracy = verdict_accuracy(llm, tokenizer, held_out)
        print(f"val ({args.val} statements): the right verdict preferred, by fact type: "
              + ", ".join(f"{t}: {a:.1%}" for t, a in accuracy.items()))


if __name__ == "__main__":
    main()
