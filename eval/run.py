"""Evaluate a checkpoint on MeerkatBench samples: generate → parse → score → report.

    python -m eval.run --checkpoint runs/demo/final --data data/synth/test.jsonl --media-root data/synth \\
        --out reports/demo [--tasks arig,igatl,avfc,avqa,avc] [--limit 50] [--resume]

Writes under --out: predictions.jsonl (prompt, raw answer, parsed answer, target, scores per sample),
metrics.json, report.md and PNG plots. Answers are generated in batches through the chat API, one task
at a time; predictions.jsonl grows batch by batch, so `--resume` continues an interrupted run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from eval import TASKS, report
from eval.answers import parse
from eval.baselines import baselines
from eval.metrics import caption_info
from eval.scoring import score
from meerkat.data import decode_row, load_instructions
from meerkat.media import resolve_media_path
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN

PREDICTIONS = "predictions.jsonl"
# Room for each task's longest trained answer (several segments, a long caption) and some slack.
MAX_NEW_TOKENS = {"arig": 64, "igatl": 96, "avfc": 96, "avqa": 24, "avc": 96}  # avfc: the facts, then the verdict


def load_samples(data: list[str], tasks: list[str], limit: int | None) -> list[dict]:
    """The samples of `tasks` in file order; `limit` keeps the first N of each task."""
    kept, counts = [], defaultdict(int)
    for row in load_instructions(data):
        sample = decode_row(row)
        if sample["task"] in tasks and (limit is None or counts[sample["task"]] < limit):
            counts[sample["task"]] += 1
            kept.append(sample)
    return kept


def request(sample: dict, media_root: str) -> dict:
    """The chat request of a one-turn sample: its question without placeholders, and its media paths."""
    turns = sample["conversations"]
    users = [t for t in turns if t["role"] == "user"]
    if len(users) != 1:
        raise ValueError(f"sample {sample['id']}: eval asks one question per sample; it has {len(users)} user turns")
    prompt = users[0]["content"].replace(IMAGE_TOKEN, "").replace(AUDIO_TOKEN, "").strip()
    return {"prompt": prompt,
            "image": str(resolve_media_path(media_root, sample["image"])) if sample.get("image") else None,
            "audio": str(resolve_media_path(media_root, sample["audio"])) if sample.get("audio") else None}


def read_predictions(path: Path) -> dict[str, dict]:
    """Rows already written, by sample id (a line cut by a kill mid-write is ignored and redone)."""
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["id"]] = row
    return rows


def generate(meerkat, samples: list[dict], media_root: str, path: Path, batch_size: int,
             max_new_tokens: int | None) -> None:
    """Answer every sample not yet in `path`, appending one row per sample after each batch."""
    done = read_predictions(path)
    pending = [s for s in samples if s["id"] not in done]
    path.write_text("".join(json.dumps(r) + "\n" for r in done.values()))  # drops a cut last line
    with open(path, "a") as f, tqdm(total=len(pending), desc="answering", unit="sample") as bar:
        for task in TASKS:
            todo = [s for s in pending if s["task"] == task]
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                requests = [request(s, media_root) for s in batch]
                replies = meerkat.generate_batch(requests, max_new_tokens=max_new_tokens or MAX_NEW_TOKENS[task])
                for sample, req, reply in zip(batch, requests, replies):
                    f.write(json.dumps({"id": sample["id"], "task": task, "prompt": req["prompt"],
                                        "image": sample.get("image"), "audio": sample.get("audio"),
                                        "raw": reply.text, "target": sample["target"]}) + "\n")
                f.flush()
                bar.update(len(batch))


def summarise(rows: list[dict], seed: int = 0) -> tuple[dict, list[dict]]:
    """Per-task metrics (model and baselines) and the rows with their parsed answers and scores."""
    tasks, scored = {}, []
    for task in TASKS:
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        targets = [r["target"] for r in task_rows]
        parsed = [parse(task, r["raw"], r["target"]) for r in task_rows]
        summary, per_sample = score(task, parsed, targets)
        tasks[task] = {
            "n": len(task_rows),
            "parse_failures": sum(p is None for p in parsed),
            "metrics": summary,
            "baselines": {name: score(task, predictions, targets)[0]
                          for name, predictions in baselines(task, targets, seed).items()},
        }
        if task == "avc":
            tasks[task]["scorer"] = caption_info()
        scored += [dict(r, parsed=p, scores=s) for r, p, s in zip(task_rows, parsed, per_sample)]
    overall = {"n": sum(t["n"] for t in tasks.values()),
               "parse_failures": sum(t["parse_failures"] for t in tasks.values())}
    return {"tasks": tasks, "overall": overall}, scored


def evaluate(checkpoint: str, data: list[str], media_root: str, out: str, tasks: list[str] = TASKS,
             batch_size: int = 16, limit: int | None = None, resume: bool = False, device: str | None = None,
             dtype: str | None = None, max_new_tokens: int | None = None, seed: int = 0) -> dict:
    """Run the whole evaluation; returns what metrics.json holds."""
    from meerkat.chat import Meerkat

    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; MeerkatBench tasks are {', '.join(TASKS)}")
    out_dir = Path(out)
    path = out_dir / PREDICTIONS
    if path.exists() and not resume:
        raise FileExistsError(f"{path} exists; pass --resume to continue that run, or choose another --out")
    samples = load_samples(data, tasks, limit)
    if not samples:
        raise ValueError(f"no samples of the tasks {', '.join(tasks)} in {', '.join(data)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    meerkat = Meerkat.from_pretrained(checkpoint, device=device, dtype=dtype)
    generate(meerkat, samples, media_root, path, batch_size, max_new_tokens)
    written = read_predictions(path)
    results, rows = summarise([written[s["id"]] for s in samples], seed)
    results["run"] = {"checkpoint": str(checkpoint), "data": [str(d) for d in data], "media_root": str(media_root),
                      "tasks": [t for t in TASKS if t in tasks], "limit": limit, "seed": seed,
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    selected = {s["id"] for s in samples}
    kept = [r for i, r in written.items() if i not in selected]  # answers of an earlier, wider run stay
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows + kept))
    os.replace(tmp, path)
    report.write(out_dir, results, rows, media_root)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a trained checkpoint folder (e.g. runs/x/final)")
    parser.add_argument("--data", required=True, nargs="+", help="instruction JSONL file(s) with targets")
    parser.add_argument("--media-root", required=True, help="the folder the samples' media paths are relative to")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, help="evaluate the first N samples of each task")
    parser.add_argument("--resume", action="store_true", help="keep the answers already in predictions.jsonl")
    parser.add_argument("--max-new-tokens", type=int, help="for every task (default: per task)")
    parser.add_argument("--device")
    parser.add_argument("--dtype", help="e.g. bfloat16")
    parser.add_argument("--seed", type=int, default=0, help="of the random baselines")
    args = parser.parse_args(argv)
    try:
        results = evaluate(args.checkpoint, args.data, args.media_root, args.out,
                           [t.strip() for t in args.tasks.split(",") if t.strip()], args.batch_size, args.limit,
                           args.resume, args.device, args.dtype, args.max_new_tokens, args.seed)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.table(results))
    print(f"\nreport: {Path(args.out) / 'report.md'}  (metrics.json, predictions.jsonl and plots beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
