"""Reading a source's annotation files (text encoding, split-named files, JSON lists) and checking
the paths built from them, so every source does both the same way.

For sources that publish one JSON file per split (avqa's `<split>_qa.json`, music_avqa's
`avqa-<split>.json`, valor's `desc_<split>.json`), `--annotations` is one of those files or the folder
holding them; the file name says the split.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Reject


def read_text(path: Path) -> str:
    """The file's text as UTF-8, with or without the byte-order mark that Excel and Windows tools write.

    Any other encoding is a ValueError naming the file and line: guessing one could corrupt ids and
    captions without anyone knowing, and stopping before anything is written loses nothing.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: byte {data[e.start]:#04x} is not UTF-8; annotation files must be UTF-8 "
                         f"(re-encode it, e.g. `iconv -f cp1252 -t utf-8`)") from e


def open_text(path: Path, newline: str | None = None) -> io.StringIO:
    """`read_text` as a file object; pass newline="" for the csv module, as `open` would need."""
    return io.StringIO(read_text(path), newline=newline)


def surplus_fields(row: dict, header: list[str]) -> Reject | None:
    """csv.DictReader files the fields past the header's under the key None: such a row held an
    unquoted comma, so its later values are shifted or cut, and it is rejected whole."""
    if not row.get(None):
        return None
    return Reject("bad_value", f"row has {len(header) + len(row[None])} fields, expected {len(header)} "
                               f"({','.join(header)}); a value holding commas must be quoted")


def surplus_tsv_fields(fields: list[str], header: list[str]) -> Reject | None:
    """The tab-separated twin of `surplus_fields`: more fields than the header means a tab inside a value."""
    if len(fields) <= len(header):
        return None
    return Reject("bad_value", f"row has {len(fields)} tab-separated fields, expected {len(header)} ({' '.join(header)})")


def path_escape(relative: str) -> str | None:
    """Why a media path would leave any root it is joined to (absolute, or `..` above its top), else None.
    Needs no root, so it is checked even when media are not."""
    if relative.startswith("/"):
        return f"{relative!r} is absolute; media paths are relative to the media root"
    normal = posixpath.normpath(relative)
    if normal == ".." or normal.startswith("../"):
        return f"{relative!r} climbs out of the media root with '..'"
    return None


def media_path_problem(value: object) -> str | None:
    """What is wrong with a sample's `image`/`audio` field, read by validate and rewritten by mix: not a
    string, or a path that leaves its root."""
    if value is not None and not isinstance(value, str):
        return "must be a relative path string or absent"
    return path_escape(value) if value else None


def inside(root: Path, relative: str) -> bool:
    """`root / relative` stays under `root`, `..` and symlinks followed."""
    return path_escape(relative) is None and (root / relative).resolve().is_relative_to(root.resolve())


def split_files(annotations: Path, split: str | None, name: str, splits: tuple[str, ...], hint: str) -> list[Path]:
    """The file given (its name must say the split asked for), or the split's file (every split's) in the
    folder given.

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
        if split not in (None, named):  # an empty output would look like a file with no rows
            raise ValueError(f"{annotations.name} is not the {split} split: pass {name.format(split)}, its folder, "
                             "or leave out --split")
        return [annotations]
    files = [annotations / name.format(s) for s in ([split] if split else splits)]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FileNotFoundError(f"{annotations}: no {name.format(split or '<split>')} there; {hint}")
    return files


def load_json_list(path: Path, what: str) -> list:
    """The JSON list in `path`; `what` names its items for the error (e.g. "question rows")."""
    try:
        rows = json.loads(read_text(path))
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
