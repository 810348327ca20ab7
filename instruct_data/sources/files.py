"""Finding a source's split-named annotation files and reading the JSON lists they hold.

For sources that publish one JSON file per split (avqa's `<split>_qa.json`, music_avqa's
`avqa-<split>.json`, valor's `desc_<split>.json`), `--annotations` is one of those files or the folder
holding them; the file name says the split.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def split_files(annotations: Path, split: str | None, name: str, splits: tuple[str, ...], hint: str) -> list[Path]:
    """The file given (if its split matches), or the split's file (every split's) in the folder given.

    `name` is the file-name pattern with `{}` for the split (e.g. "avqa-{}.json"); `hint` says what to
    pass instead when no such file is in the folder (e.g. "pass the AVQA annotation folder or one of its files").
    """
    if split is not None and split not in splits:
        raise ValueError(f"split {split!r} is not one of {splits}")
    if annotations.is_file():
        named = next((s for s in splits if annotations.name == name.format(s)), None)
        if split is not None and named is None:
            raise ValueError(f"{annotations}: its name does not say its split; name it {name.format('<split>')} "
                             "or convert without a split")
        return [annotations] if split in (None, named) else []
    files = [annotations / name.format(s) for s in ([split] if split else splits)]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FileNotFoundError(f"{annotations}: no {name.format(split or '<split>')} there; {hint}")
    return files


def load_json_list(path: Path, what: str) -> list:
    """The JSON list in `path`; `what` names its items for the error (e.g. "question rows")."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of {what}, got a {type(rows).__name__}")
    return rows


def json_rows(annotations: Path, split: str | None, name: str, splits: tuple[str, ...], hint: str,
              what: str) -> Iterator[tuple[str, object]]:
    """(ref, row) for every row of the split's files, in file order; ref is "<file>[<index>]"."""
    for path in split_files(Path(annotations), split, name, splits, hint):
        for i, row in enumerate(load_json_list(path, what)):
            yield f"{path.name}[{i}]", row
