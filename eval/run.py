"""Evaluate a checkpoint on MeerkatBench samples: generate → parse → score → report.

    python -m eval.run --checkpoint runs/demo/final --data data/synth/test.jsonl --media-root data/synth \\
        --out reports/demo [--tasks arig,igatl,avfc,avqa,avc] [--limit 50] [--resume]

Writes under --out: predictions.jsonl (prompt, raw answer, parsed answer, target, scores per sample),
metrics.json, report.md and PNG plots. Answers are generated in batches through the chat API, one task
at a time; predictions.jsonl grows batch by batch, so `--resume` continues an interrupted run.
generation.json beside it records the checkpoint and settings the answers came from, so a resume with
another checkpoint is refused rather than mixing two models' answers in one report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from eval import TASKS, report
from eval.answers import parse
from eval.baselines import baselines
from eval.metrics import caption_info
from eval.scoring import score
from instruct_data.validate import TASKS as FORMAT_TASKS
from meerkat.chat import Meerkat, add_base_argument
from meerkat.data import decode_row, load_instructions
from meerkat.media import MediaError, resolve_media_path
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN

PREDICTIONS = "predictions.jsonl"
GENERATION = "generation.json"  # what the answers in predictions.jsonl were generated with
SHOWN = 20  # problems listed in one error message; the rest are counted
# Room for each task's longest trained answer (several segments, a long caption) and some slack.
MAX_NEW_TOKENS = {"arig": 64, "igatl": 96, "avfc": 96, "avqa": 24, "avc": 96}  # avfc: the facts, then the verdict


def _listed(problems: list[str]) -> str:
    more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return "".join(f"\n  {p}" for p in problems[:SHOWN]) + more


def load_samples(data: list[str], tasks: list[str], limit: int | None) -> tuple[list[dict], Counter]:
    """The samples of `tasks` in file order (each with its `location`, file:line); `limit` keeps
    the first N of each task. Also the count of each task of the data format that eval does not score
    (`classify`, `caption_audio`, ...), so those rows are reported, not silently lost. A task the format
    does not know (a typo such as "arg") is an error: its rows were meant for some task, and scoring
    without them would report a subset as the whole. So is an id met twice: answers are kept by id."""
    kept, counts, unscored, unknown, first = [], defaultdict(int), Counter(), [], {}
    for row in load_instructions(data):
        task = row["task"]
        if row["id"] in first:
            unknown.append(f"{row['location']}: sample {row['id']}: id: also at {first[row['id']]}")
        first.setdefault(row["id"], row["location"])
        if task not in FORMAT_TASKS:
            unknown.append(f"{row['location']}: sample {row['id']}: task: {task!r}")
        elif task not in TASKS:
            unscored[task] += 1
        elif task in tasks and (limit is None or counts[task] < limit):
            counts[task] += 1
            kept.append(decode_row(row))
    if unknown:
        raise ValueError(f"{len(unknown)} sample(s) with a task the instruction format does not know (it knows "
                         f"{', '.join(sorted(FORMAT_TASKS))}) or an id used before; fix them, or check the files "
                         f"with `python -m instruct_data validate`:{_listed(unknown)}")
    return kept, unscored


def request(sample: dict, media_root: str) -> dict:
    """The chat request of a one-turn sample: its question without placeholders, and its media paths.
    Errors name the sample, its file:line and the field, so a bad row is found without a search."""
    where = f"{sample['location']}: sample {sample['id']}"
    users = [t for t in sample["conversations"] if t["role"] == "user"]
    if len(users) != 1:
        raise ValueError(f"{where}: conversations: eval asks one question per sample; it has {len(users)} user turns")
    media = {}
    for field in ("image", "audio"):
        try:
            media[field] = str(resolve_media_path(media_root, sample[field])) if sample.get(field) else None
        except (MediaError, FileNotFoundError) as e:
            raise ValueError(f"{where}: {field}: {e}") from e
    return {"prompt": users[0]["content"].replace(IMAGE_TOKEN, "").replace(AUDIO_TOKEN, "").strip(), **media}


def requests_of(samples: list[dict], media_root: str) -> dict[str, dict]:
    """Every sample's request by id, checked before any answer is generated. A sample that cannot be asked
    stops the run, all such samples listed at once: scoring the others would report a subset as the whole."""
    requests, problems = {}, []
    for sample in samples:
        try:
            requests[sample["id"]] = request(sample, media_root)
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ValueError(f"{len(problems)} sample(s) cannot be asked; nothing was generated:{_listed(problems)}")
    return requests


def generation_settings(checkpoint: str, dtype: str | None, max_new_tokens: int | None) -> dict:
    """What the answers depend on besides the samples (decoding is greedy): the checkpoint, its dtype and
    each task's answer length. The checkpoint's files are identified by name, size and modification time,
    as `meerkat.data` keys its cache, so retraining into the same folder counts as another checkpoint."""
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {checkpoint}")
    stamps = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    return {"checkpoint": str(folder.resolve()),
            "checkpoint_files": hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16],
            "dtype": dtype, "max_new_tokens": {t: max_new_tokens or MAX_NEW_TOKENS[t] for t in TASKS}}


def check_resume(out_dir: Path, settings: dict) -> None:
    """Refuse to add answers generated differently from those already in predictions.jsonl."""
    path = out_dir / GENERATION
    if not path.is_file():
        raise ValueError(f"{out_dir / PREDICTIONS} has no {GENERATION} beside it saying which checkpoint wrote its "
                         "answers (an older eval wrote it); choose another --out")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); choose another --out") from e
    changed = [f"{key}: {saved.get(key)!r} then, {value!r} now" for key, value in settings.items()
               if saved.get(key) != value]
    if changed:
        raise ValueError(f"--resume would mix answers of different models or settings in {out_dir / PREDICTIONS} "
                         f"({'; '.join(changed)}); pass the same --checkpoint, --dtype and --max-new-tokens as "
                         "that run, or choose another --out")


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


def generate(meerkat, samples: list[dict], requests: dict[str, dict], path: Path, batch_size: int,
             max_new_tokens: dict[str, int]) -> None:
    """Answer every sample not yet in `path`, appending one row per sample after each batch. Media that
    fails to decode stops the run naming its sample; the batches before it stay for `--resume`."""
    done = read_predictions(path)
    pending = [s for s in samples if s["id"] not in done]
    path.write_text("".join(json.dumps(r) + "\n" for r in done.values()))  # drops a cut last line
    with open(path, "a") as f, tqdm(total=len(pending), desc="answering", unit="sample") as bar:
        for task in TASKS:
            todo = [s for s in pending if s["task"] == task]
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                asked = [requests[s["id"]] for s in batch]
                try:
                    replies = meerkat.generate_batch(asked, max_new_tokens=max_new_tokens[task])
                except MediaError as e:
                    bad = [s for s, r in zip(batch, asked) if any(p and p in str(e) for p in (r["image"], r["audio"]))]
                    names = ", ".join(f"{s['location']}: sample {s['id']}" for s in bad or batch)
                    raise MediaError(f"{names}: {e}; the answers before it are kept: fix or drop the sample, "
                                     "then rerun with --resume") from e
                for sample, req, reply in zip(batch, asked, replies):
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
             dtype: str | None = None, max_new_tokens: int | None = None, seed: int = 0,
             base_paths: dict[str, str] | None = None) -> dict:
    """Run the whole evaluation; returns what metrics.json holds. `base_paths`: as in
    `Meerkat.from_pretrained`, where moved base weights are now."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; MeerkatBench tasks are {', '.join(TASKS)}")
    for name, value in (("batch_size", batch_size), ("limit", limit), ("max_new_tokens", max_new_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    out_dir = Path(out)
    path = out_dir / PREDICTIONS
    if path.exists() and not resume:
        raise FileExistsError(f"{path} exists; pass --resume to continue that run, or choose another --out")
    settings = generation_settings(checkpoint, dtype, max_new_tokens)
    if read_predictions(path):  # an empty file (a run stopped before its first answer) has nothing to mix
        check_resume(out_dir, settings)
    samples, unscored = load_samples(data, tasks, limit)
    if unscored:
        print(report.unscored(unscored), file=sys.stderr)
    if not samples:
        raise ValueError(f"no samples of the tasks {', '.join(tasks)} in {', '.join(data)}")
    requests = requests_of(samples, media_root)
    # Loaded before --out is made, so a checkpoint that fails to load leaves no empty report folder.
    meerkat = Meerkat.from_pretrained(checkpoint, device=device, dtype=dtype, base_paths=base_paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / GENERATION).write_text(json.dumps(settings, indent=2) + "\n")
    generate(meerkat, samples, requests, path, batch_size, settings["max_new_tokens"])
    written = read_predictions(path)
    results, rows = summarise([written[s["id"]] for s in samples], seed)
    results["run"] = {"checkpoint": str(checkpoint), "data": [str(d) for d in data], "media_root": str(media_root),
                      "tasks": [t for t in TASKS if t in tasks], "limit": limit, "seed": seed,
                      "dtype": dtype, "max_new_tokens": settings["max_new_tokens"], "unscored": dict(unscored),
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    selected = {s["id"] for s in samples}
    kept = [r for i, r in written.items() if i not in selected]  # answers of an earlier, wider run stay
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows + kept))
    os.replace(tmp, path)
    report.write(out_dir, results, rows, media_root)
    return results


def _positive(text: str) -> int:
    """A count of at least 1, checked by argparse before anything is read or written."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a trained checkpoint folder (e.g. runs/x/final)")
    parser.add_argument("--data", required=True, nargs="+", help="instruction JSONL file(s) with targets")
    parser.add_argument("--media-root", required=True, help="the folder the samples' media paths are relative to")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    parser.add_argument("--batch-size", type=_positive, default=16)
    parser.add_argument("--limit", type=_positive, help="evaluate the first N samples of each task")
    parser.add_argument("--resume", action="store_true",
                        help="keep the answers already in predictions.jsonl (same checkpoint, dtype, max new tokens)")
    parser.add_argument("--max-new-tokens", type=_positive, help="for every task (default: per task)")
    parser.add_argument("--device")
    parser.add_argument("--dtype", help="e.g. bfloat16")
    parser.add_argument("--seed", type=int, default=0, help="of the random baselines")
    add_base_argument(parser)
    args = parser.parse_args(argv)
    try:
        results = evaluate(args.checkpoint, args.data, args.media_root, args.out,
                           [t.strip() for t in args.tasks.split(",") if t.strip()], args.batch_size, args.limit,
                           args.resume, args.device, args.dtype, args.max_new_tokens, args.seed, dict(args.base))
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.table(results))
    print(f"\nreport: {Path(args.out) / 'report.md'}  (metrics.json, predictions.jsonl and plots beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
