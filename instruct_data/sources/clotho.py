"""Clotho v2 (Drossos et al., ICASSP 2020): five human captions for each 15-30 s Freesound clip.

Format: Zenodo record 4783391 (v2.1), read as in github.com/audio-captioning/clotho-dataset
(`tools/csv_functions.py`, a csv.DictReader): `clotho_captions_development.csv`,
`clotho_captions_validation.csv`, `clotho_captions_evaluation.csv`, header
`file_name,caption_1,caption_2,caption_3,caption_4,caption_5`, one clip per row:

    Santa Motor.wav,A machine whines and squeals while rhythmically punching or stamping.,...

The file name carries the split (development = train, validation = val, evaluation = test) and the
folder its audio is unpacked into. --annotations is one of those CSVs or the directory holding them:
--split picks one file (it must be there), no --split reads those of the three that are there (Clotho v1
has no validation split). A row with any of its five captions empty is rejected whole, so every Record
has the five references the metrics expect. The CSVs have no clip length; clips run 15-30 s.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from instruct_data.sources.base import Record, Reject, Row
from instruct_data.sources.files import open_text, surplus_fields

NAME = "clotho"
TASKS = ("caption_audio",)
INPUTS = ("clotho_captions_{development,validation,evaluation}.csv from Zenodo record 4783391 (v2.1) "
          "(one file, or their directory)")
MEDIA = ("development/<file_name>, validation/<file_name>, evaluation/<file_name>: the 44.1 kHz wavs as "
         "unpacked from clotho_audio_<split>.7z (kept as they are: training resamples audio to 48 kHz as it loads it)")

SPLITS = {"train": "development", "val": "validation", "test": "evaluation"}
CAPTIONS = tuple(f"caption_{k}" for k in range(1, 6))


def read(annotations: Path, split: str | None) -> Iterator[Row]:
    """Yield one Record per clip with its five captions, or a Reject naming the bad field."""
    for path, folder in _files(Path(annotations), split):
        yield from _read_file(path, folder)


def _files(annotations: Path, split: str | None) -> list[tuple[Path, str]]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"Clotho splits are {', '.join(SPLITS)}; got --split {split!r}")
    folders = [SPLITS[split]] if split else list(SPLITS.values())
    if annotations.is_dir():
        paths = [(annotations / f"clotho_captions_{folder}.csv", folder) for folder in folders]
        paths = [(path, folder) for path, folder in paths if path.is_file()]
        if not paths:
            raise FileNotFoundError(f"{annotations} holds no clotho_captions_<{'|'.join(folders)}>.csv: pass "
                                    f"the folder of the published Clotho captions CSVs")
        return paths
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} not found: pass a Clotho captions CSV or its directory")
    folder = annotations.stem.removeprefix("clotho_captions_")
    if folder not in SPLITS.values():
        raise ValueError(f"{annotations.name}: expected clotho_captions_<development|validation|evaluation>.csv, "
                         f"the published name, which says which audio folder the clips are in")
    if folder not in folders:
        raise ValueError(f"{annotations.name} is not the {split} split: pass "
                         f"clotho_captions_{SPLITS[split]}.csv, its directory, or leave out --split")
    return [(annotations, folder)]


def _read_file(path: Path, folder: str) -> Iterator[Row]:
    split = {v: k for k, v in SPLITS.items()}[folder]
    with open_text(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file_name", *CAPTIONS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(missing)}; "
                             f"expected file_name,{','.join(CAPTIONS)}")
        for row in reader:
            ref = f"{path.name}:{reader.line_num}"
            if reject := surplus_fields(row, reader.fieldnames):
                yield Row(ref, reject)
                continue
            file_name = (row["file_name"] or "").strip()
            if not file_name:
                yield Row(ref, Reject("missing_field", "file_name is empty"))
                continue
            absent = [c for c in CAPTIONS if row[c] is None]
            if absent:
                yield Row(ref, Reject("missing_field", f"{absent[0]} is missing for {file_name!r}"))
                continue
            captions = [row[c].strip() for c in CAPTIONS]
            if "" in captions:
                column = CAPTIONS[captions.index("")]
                yield Row(ref, Reject("empty_answer", f"{column} is empty for {file_name!r}"))
                continue
            yield Row(ref, Record(uid=file_name, clip_id=file_name, audio=f"{folder}/{file_name}",
                                  captions=captions, extra={"split": split}))
