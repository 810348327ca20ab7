"""The Llama sentencepiece tokenizer, plus the `<image>` and `<audio>` placeholder tokens.

With a local Llama directory the tokenizer is loaded from it; the tiny preset trains a small
Llama-style sentencepiece BPE model (byte fallback, split digits) on bundled text, offline, in
well under a second. The text (written by `python -m instruct_data.corpus`) holds the prompts these
models read, so their words are whole pieces, as in Llama's tokenizer. A checkpoint's tokenizer is
read back as saved (`load_tokenizer`): the corpus changes, and with it the ids a new one would give.
"""

from __future__ import annotations

import io
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import sentencepiece as spm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from meerkat.config import LLMConfig

IMAGE_TOKEN = "<image>"
AUDIO_TOKEN = "<audio>"


def build_tokenizer(cfg: LLMConfig) -> PreTrainedTokenizerBase:
    """The LLM's tokenizer with the media placeholder tokens added (ids past the LLM vocabulary)."""
    if cfg.path is not None:
        tokenizer = AutoTokenizer.from_pretrained(cfg.path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "tokenizer.model").write_bytes(_train_sentencepiece(cfg.tokenizer_vocab_size))
            tokenizer = AutoTokenizer.from_pretrained(tmp)
    return add_media_tokens(tokenizer)


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in a checkpoint folder, media tokens included: the ids its weights were trained on."""
    folder = Path(folder)
    if not (folder / "tokenizer_config.json").is_file() or not any(
            (folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        raise FileNotFoundError(f"{folder} has no tokenizer (tokenizer_config.json and tokenizer.json or "
                                "tokenizer.model): copy the tokenizer files saved with the checkpoint into it")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    missing = [t for t in (IMAGE_TOKEN, AUDIO_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(f"the tokenizer in {folder} has no {' or '.join(missing)} token: it was not saved by Meerkat")
    return tokenizer


def add_media_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Register `<image>`/`<audio>` as special tokens and give Llama (which has none) a pad token."""
    missing = [t for t in (IMAGE_TOKEN, AUDIO_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


@lru_cache(maxsize=4)
def _train_sentencepiece(vocab_size: int) -> bytes:
    """A Llama-like sentencepiece model trained on the bundled corpus (deterministic: one thread)."""
    corpus = resources.files("meerkat").joinpath("assets/tokenizer_corpus.txt").read_text().splitlines()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    return model.getvalue()
