"""`python -m instruct_data` (also `meerkat-data`): convert public audio-visual datasets and the
procedural world into Meerkat instruction JSONL, then check, mix, split and describe it.

    python -m instruct_data sources
    python -m instruct_data synth --out data/synth --n 2000 --seed 0
    python -m instruct_data convert vggss --annotations vggss.json --media-root data/vggss --out vggss.jsonl
    python -m instruct_data validate vggss.jsonl --media-root data/vggss
    python -m instruct_data mix vggss.jsonl:1 data/synth/train.jsonl:0.5 --out train.jsonl \
        --media-root data --root vggss.jsonl=data/vggss --root data/synth/train.jsonl=data/synth
    python -m instruct_data split all.jsonl --out data/splits
    python -m instruct_data stats train.jsonl
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from pathlib import Path

from instruct_data import convert as conversion
from instruct_data import mixture
from instruct_data.sources import SOURCE_NAMES, get_source


def _count(text: str) -> int:
    """A number of rows: argparse's int takes -1, which reads nothing and writes an empty file."""
    if not re.fullmatch("[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _range(text: str, kind=int) -> tuple:
    """N or LOW-HIGH; with kind=float either end may be negative (`--snr-db=-5-10`) or have decimals."""
    number = r"\d+" if kind is int else r"-?\d+(?:\.\d*)?"
    match = re.fullmatch(rf"\s*({number})\s*(?:-\s*({number})\s*)?", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a number or a range like {'1-3' if kind is int else '-5-10.5'}, "
                                         f"got {text!r}")
    low, high = match.groups()
    return kind(low), kind(high or low)


def cmd_sources(args) -> int:
    for name in SOURCE_NAMES:
        source = get_source(name)
        print(f"{name}  →  {', '.join(source.TASKS)}")
        print(textwrap.indent(textwrap.fill(f"annotations: {source.INPUTS}", 96), "    "))
        print(textwrap.indent(textwrap.fill(f"media: {source.MEDIA}", 96), "    "))
    return 0


def cmd_convert(args) -> int:
    summary = conversion.convert(get_source(args.source), args.annotations, args.out, media_root=args.media_root,
                                 split=args.split, limit=args.limit, seed=args.seed, strict=args.strict)
    print(summary.table())
    print(f"wrote {args.out} and {conversion.rejects_path(args.out)}")
    return 0


def cmd_validate(args) -> int:
    from instruct_data.validate import validate

    report = validate(args.file, args.media_root)
    for line in report:
        print(line)
    print(f"{args.file}: {'OK' if not report else f'{len(report)} problem(s)'}")
    return 1 if report else 0


def cmd_mix(args) -> int:
    inputs = [mixture.parse_weighted(spec) for spec in args.inputs]
    roots = mixture.parse_roots(args.root, [path for path, _ in inputs], args.media_root)
    n = conversion.write_jsonl_atomic(args.out, mixture.mix(inputs, args.seed, roots))
    print(f"wrote {n} samples to {args.out} from " + ", ".join(f"{p} ×{w:g}" for p, w in inputs)
          + (f"; media paths relative to {args.media_root}" if roots else ""))
    return 0


def cmd_split(args) -> int:
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; split writes train.jsonl, val.jsonl and test.jsonl into a folder")
    parts = mixture.split(list(mixture.read_jsonl(args.file, mixture.id_problems)), tuple(args.fractions), args.seed)
    for name, samples in parts.items():
        conversion.write_jsonl_atomic(args.out / f"{name}.jsonl", samples)
        clips = len({mixture.clip_key(s) for s in samples})
        print(f"{name:<6}{len(samples):>8} samples {clips:>7} clips → {args.out / f'{name}.jsonl'}")
    return 0


def cmd_stats(args) -> int:
    from transformers import AutoTokenizer

    from instruct_data.stats import stats
    from meerkat.config import get_preset
    from meerkat.tokenizer import add_media_tokens, build_tokenizer

    if args.tokenizer and not Path(args.tokenizer).is_dir():  # else transformers takes it for a hub id
        raise ValueError(f"--tokenizer {args.tokenizer}: no such folder; pass a local tokenizer folder")
    tokenizer = (add_media_tokens(AutoTokenizer.from_pretrained(args.tokenizer)) if args.tokenizer
                 else build_tokenizer(get_preset("tiny").llm))
    print(stats(args.file, tokenizer, args.image_tokens, args.audio_tokens))
    return 0


def cmd_synth(args) -> int:
    from instruct_data.synth import generate

    annotations = generate(args.out, args.n, args.seed, objects=args.objects, distractors=args.distractors,
                           snr_db=args.snr_db, views=args.views)
    for split in ("train", "val", "test"):
        out = args.out / f"{split}.jsonl"
        summary = conversion.convert(get_source("synth"), annotations, out, media_root=args.out, split=split,
                                     seed=args.seed)
        print(f"{split}: {sum(summary.samples.values())} samples from {summary.records} records, "
              f"{sum(summary.rejected.values())} rejected → {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="meerkat-data", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sources", help="list the supported sources, their tasks and expected files")
    p.set_defaults(run=cmd_sources)

    p = sub.add_parser("convert", help="convert one source's annotations into instruction JSONL")
    p.add_argument("source", choices=SOURCE_NAMES)
    p.add_argument("--annotations", type=Path, required=True, help="the annotation file or folder (see `sources`)")
    p.add_argument("--media-root", type=Path, help="folder the media paths are relative to; checks media "
                   "and extracts frames/audio from videos. Without it media are not checked")
    p.add_argument("--out", type=Path, required=True, help="output JSONL; rejects go to OUT.rejects.jsonl")
    p.add_argument("--split", choices=("train", "val", "test"), help="keep only this split where the source has splits")
    p.add_argument("--limit", type=_count, help="read at most N input rows")
    p.add_argument("--seed", type=int, default=0, help="seed for template phrasing and AVFC negatives")
    p.add_argument("--strict", action="store_true", help="stop with an error at the first row that cannot be converted")
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser("validate", help="check a JSONL: schema, media, ranges, path escapes, duplicate ids")
    p.add_argument("file", type=Path)
    p.add_argument("--media-root", type=Path, help="check that media exist, stay inside it, and open")
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("mix", help="build a shuffled training mixture with per-file weights (FILE:WEIGHT)",
                       description="Mix instruction JSONLs with per-file weights into one shuffled file. Ids stay "
                       "unique: a sample taken again (weight > 1, a file given twice) gets an id suffix #k. Each "
                       "source's media paths are relative to its own media root; to train on the mixture with one "
                       "--media-root, give that common folder here and each input's root with --root: paths are "
                       "rewritten relative to the common folder, e.g. --media-root data --root "
                       "data/vggss.jsonl=data/vggsound --root data/synth/train.jsonl=data/synth.")
    p.add_argument("inputs", nargs="+", metavar="FILE[:WEIGHT]")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--media-root", type=Path, metavar="COMMON",
                   help="the folder training will use as media root; every input's root must lie inside it")
    p.add_argument("--root", action="append", default=[], metavar="FILE=ROOT",
                   help="the media root FILE's paths are relative to (the --media-root it was converted with); "
                   "one per input, needed with --media-root")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_mix)

    p = sub.add_parser("split", help="split a JSONL into train/val/test by clip, so no clip leaks across splits")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for train.jsonl, val.jsonl, test.jsonl")
    p.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_split)

    p = sub.add_parser("stats", help="counts per task/source and answer/token length percentiles")
    p.add_argument("file", type=Path)
    p.add_argument("--tokenizer", help="a local HF tokenizer folder (default: the tiny preset's tokenizer)")
    p.add_argument("--image-tokens", type=int, default=196, help="tokens per image (ViT-B/16: 196)")
    p.add_argument("--audio-tokens", type=int, default=32, help="tokens per audio clip (meerkat-7b: 32)")
    p.set_defaults(run=cmd_stats)

    p = sub.add_parser("synth", help="generate the procedural audio-visual world and convert it")
    p.add_argument("--out", type=Path, required=True, help="folder for the world's media and train/val/test JSONL")
    p.add_argument("--n", type=int, default=1000, help="number of scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objects", type=_range, default=(1, 3), help="objects per image, N or MIN-MAX")
    p.add_argument("--distractors", type=_range, default=(0, 2), help="distractor sounds per clip, N or MIN-MAX")
    p.add_argument("--snr-db", type=lambda s: _range(s, float), default=(10.0, 30.0), help="signal-to-noise ratio in dB, N or MIN-MAX")
    p.add_argument("--views", type=int, default=1,
                   help="pictures per soundtrack: scenes come in takes of this many, like frames of one video")
    p.set_defaults(run=cmd_synth)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
    except (ValueError, OSError, conversion.ConversionError) as e:  # OSError: an unreadable or unwritable path
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
