from meerkat.config import get_preset
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN, _train_sentencepiece, build_tokenizer


def test_tiny_tokenizer_is_deterministic_and_llama_like():
    _train_sentencepiece.cache_clear()
    first = _train_sentencepiece(512)
    _train_sentencepiece.cache_clear()
    assert _train_sentencepiece(512) == first
    tok = build_tokenizer(get_preset("tiny").llm)
    assert (tok.unk_token, tok.bos_token, tok.eos_token) == ("<unk>", "<s>", "</s>")
    assert tok.convert_tokens_to_ids([IMAGE_TOKEN, AUDIO_TOKEN]) == [512, 513]  # past the LLM vocabulary
    assert tok.pad_token_id == tok.unk_token_id == 0


def test_digits_are_single_tokens_and_unseen_text_round_trips():
    tok = build_tokenizer(get_preset("tiny").llm)
    pieces = tok.tokenize("[0.37, 0.81]")
    assert all(len(p.strip("▁")) <= 1 for p in pieces if any(c.isdigit() for c in p))
    text = "Zebra ß → 3.14\nnext line"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text


def test_bundled_corpus_is_what_instruct_data_corpus_writes():
    from importlib import resources

    from instruct_data.corpus import corpus_lines

    bundled = resources.files("meerkat").joinpath("assets/tokenizer_corpus.txt").read_text().splitlines()
    assert bundled == corpus_lines(), "regenerate it: python -m instruct_data.corpus > meerkat/assets/tokenizer_corpus.txt"


def test_small_tokenizer_has_whole_words_for_the_prompts_it_reads():
    from meerkat.prompt import DEFAULT_SYSTEM

    tok = build_tokenizer(get_preset("small").llm)
    assert tok.tokenize("Reply with its box, the yellow triangle is faint") == [
        "▁Reply", "▁with", "▁its", "▁box", ",", "▁the", "▁yellow", "▁triangle", "▁is", "▁faint"]
    assert len(tok.tokenize(DEFAULT_SYSTEM)) < 60  # 92 pieces with the earlier 2 KB corpus
