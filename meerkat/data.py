"""Instruction JSONL → an Arrow-backed `datasets.Dataset`, cached on disk by `datasets`.

`target` and `grounding` hold different fields per task (boxes, segments, a truth value, captions),
which one Arrow schema cannot type column by column, so they are stored as JSON text and decoded by
`decode_row`. The cache is keyed on the files' paths, sizes and modification times.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from datasets import Dataset, Features, Value
from datasets.exceptions import DatasetGenerationError

# Where a sample's target keeps the type its task is broken down by (reports, `select_tasks`).
TYPE_FIELD = {"avfc": "fact_type", "avqa": "question_type"}

FEATURES = Features({
    "id": Value("string"), "source": Value("string"), "task": Value("string"), "clip_id": Value("string"),
    "image": Value("string"), "audio": Value("string"),
    "conversations": [{"role": Value("string"), "content": Value("string")}],
    "target": Value("string"), "grounding": Value("string"),
    "location": Value("string"),  # file:line, for errors about the sample
})


def _rows(paths: list[str], stamps: list[tuple[int, int]]) -> Iterator[dict]:
    """Samples as Arrow rows. `stamps` (size, mtime per file) is unused here: it is part of the cache key."""
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                try:
                    sample = json.loads(line)
                    yield {
                        "id": sample["id"], "source": sample["source"], "task": sample["task"],
                        "clip_id": sample.get("clip_id"), "image": sample.get("image"), "audio": sample.get("audio"),
                        "conversations": [{"role": t["role"], "content": t["content"]} for t in sample["conversations"]],
                        "target": json.dumps(sample.get("target") or {}),
                        "grounding": json.dumps(sample.get("grounding") or {}),
                        "location": f"{path}:{number}",
                    }
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{number}: not a valid sample ({e!r}); "
                                     "check it with `python -m instruct_data validate`") from e


def load_instructions(paths: str | Path | Sequence[str | Path], cache_dir: str | Path | None = None) -> Dataset:
    """One Dataset over one or more instruction JSONL files, in file order."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"instruction file not found: {path}")
    stamps = [(p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    try:
        return Dataset.from_generator(_rows, gen_kwargs={"paths": [str(p.resolve()) for p in paths], "stamps": stamps},
                                      features=FEATURES, cache_dir=str(cache_dir) if cache_dir else None)
    except DatasetGenerationError as e:
        if isinstance(e.__cause__, ValueError):  # our message names the file and line; datasets' does not
            raise e.__cause__ from None
        raise


def decode_row(row: dict) -> dict:
    """A dataset row back in the JSONL sample form (target and grounding as dicts)."""
    return dict(row, target=json.loads(row["target"]), grounding=json.loads(row["grounding"]))


def select_tasks(rows: Dataset, selectors: Sequence[str]) -> Dataset:
    """The rows of the selected tasks: "arig" takes a task, "avqa:where" one type of it (`TYPE_FIELD`).
    A selector that matches no row is an error naming what the rows hold, so a typo loses no run."""
    wanted = [s.partition(":")[::2] for s in selectors]
    for task, kind in wanted:
        if kind and task not in TYPE_FIELD:
            raise ValueError(f"train_tasks: {task}:{kind} — only {', '.join(TYPE_FIELD)} samples have types")

    def key(task: str, target: str) -> tuple[str, str]:
        return task, str(json.loads(target).get(TYPE_FIELD[task], "")) if task in TYPE_FIELD else ""

    def matches(selector: tuple[str, str], row: tuple[str, str]) -> bool:
        return row[0] == selector[0] and selector[1] in ("", row[1])

    keys = [key(t, target) for t, target in zip(rows["task"], rows["target"])]
    for selector, given in zip(wanted, selectors):
        if not any(matches(selector, row) for row in keys):
            held = sorted({f"{t}:{k}" if k else t for t, k in keys})
            raise ValueError(f"train_tasks: {given!r} matches no sample; the data holds " + ", ".join(held))
    return rows.select([i for i, row in enumerate(keys) if any(matches(selector, row) for selector in wanted)])
