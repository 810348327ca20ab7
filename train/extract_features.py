"""Run the frozen encoders once over a training config's data and store their outputs, so training
reads tokens instead of decoding images and audio every epoch (`feature_cache=` in the config).

    python train/extract_features.py --config train/configs/tiny_synth.yaml --out features/tiny_synth
    accelerate launch train/sft.py --config train/configs/tiny_synth.yaml feature_cache=features/tiny_synth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python train/extract_features.py` from a clone

from meerkat.data import load_instructions  # noqa: E402
from meerkat.features import FeatureWriter  # noqa: E402
from meerkat.media import load_image, resolve_media_path  # noqa: E402
from meerkat.model import build_encoders  # noqa: E402
from meerkat.processor import MeerkatProcessor  # noqa: E402
from train.config import load_config  # noqa: E402
from train.sft import prepare_data  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the training config whose data and encoders to use")
    parser.add_argument("--out", type=Path, required=True, help="folder for the shards and index.json")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--shard_size", type=int, default=512, help="media items per safetensors shard")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(args.config, overrides)
    model_cfg = cfg.model_config()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vision, audio = build_encoders(model_cfg)  # each in its config's dtype, which the features keep
    vision, audio = vision.to(device), audio.to(device)
    # only the media loading of the processor is used here, so it needs no tokenizer
    processor = MeerkatProcessor(None, vision.transform, vision.num_tokens, audio.num_tokens, model_cfg.audio)
    files, media_root = prepare_data(cfg)
    rows = load_instructions(files)
    writer = FeatureWriter(args.out, model_cfg, args.shard_size)
    for kind, encoder, load in (("image", vision, lambda p: vision.transform(load_image(p)).unsqueeze(0)),
                                ("audio", audio, processor.load_clips)):
        paths = sorted({p for p in rows[kind] if p})
        for start in tqdm(range(0, len(paths), args.batch_size), desc=f"{kind} features", unit="batch"):
            chunk = paths[start : start + args.batch_size]
            inputs = [load(resolve_media_path(media_root, p)) for p in chunk]  # each (clips or 1, ...)
            with torch.no_grad():
                outputs = encoder(torch.cat(inputs).to(device))  # (sum of clips, tokens, width)
            for path, part in zip(chunk, outputs.split([len(i) for i in inputs])):
                writer.add(kind, path, part[0] if kind == "image" else part)
    writer.close()
    print(f"wrote features of {len(writer.index['image'])} images and {len(writer.index['audio'])} audio clips "
          f"to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # a bad config, data file or media file: the message names it
        sys.exit(f"error: {e}")
