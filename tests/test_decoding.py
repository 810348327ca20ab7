import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from meerkat.decoding import StaticDecoder, _choose

EOS, PAD = 2, 0


@pytest.fixture(scope="module")
def llm():
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=96, max_position_embeddings=512)
    return LlamaForCausalLM(config).eval()


def _left_padded(llm, lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.full((len(lengths), longest), PAD)
    mask = torch.zeros(len(lengths), longest, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, longest - n:] = torch.randint(3, 96, (n,), generator=generator)
        mask[row, longest - n:] = 1
    return llm.get_input_embeddings()(ids), mask


def _generate(llm, embeds, mask, **kwargs):
    with torch.no_grad():
        return llm.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False, pad_token_id=PAD,
                            eos_token_id=EOS, **kwargs)


@pytest.mark.parametrize("lengths", [[7], [5, 9, 3]])
def test_greedy_tokens_equal_transformers_generate_for_left_padded_batches(llm, lengths):
    embeds, mask = _left_padded(llm, lengths)
    expected = _generate(llm, embeds, mask, max_new_tokens=20, min_new_tokens=20)
    decoder = StaticDecoder(llm, compile=False, check_every=4)
    got = decoder.generate(embeds, mask, max_new_tokens=20, min_new_tokens=20, eos_token_id=EOS, pad_token_id=PAD)
    assert got.shape == (len(lengths), 20)
    assert torch.equal(got, expected)
    # the cache is reused for a second request of the same size and gives the same tokens again
    cache = decoder._cache
    assert torch.equal(decoder.generate(embeds, mask, max_new_tokens=20, min_new_tokens=20, eos_token_id=EOS,
                                        pad_token_id=PAD), expected) and decoder._cache is cache


def test_rows_that_end_are_padded_and_decoding_stops_where_generate_stops(llm):
    embeds, mask = _left_padded(llm, [4, 6], seed=0)
    rows = _generate(llm, embeds, mask, max_new_tokens=30, min_new_tokens=30).tolist()
    # an end-of-sequence id that both rows reach, at different steps: one row ends first and is padded
    eos = next(t for t in rows[0] if t in rows[1] and rows[0].index(t) != rows[1].index(t))
    expected = llm.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False, pad_token_id=PAD,
                            eos_token_id=eos, max_new_tokens=30)
    assert expected.shape[1] < 30 and (expected == PAD).any(), "the test needs rows that end at different steps"
    got = StaticDecoder(llm, compile=False, check_every=8).generate(embeds, mask, max_new_tokens=30, eos_token_id=eos,
                                                                    pad_token_id=PAD)
    assert torch.equal(got, expected)


def test_top_p_keeps_the_smallest_prefix_reaching_its_mass():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.manual_seed(0)
    drawn = {int(_choose(logits, temperature=1.0, top_p=0.7)) for _ in range(300)}
    assert drawn == {0, 1}
    assert int(_choose(logits, temperature=0.0, top_p=0.7)) == 0


@pytest.mark.slow
def test_the_compiled_step_decodes_the_eager_tokens(llm):
    """The path GPUs take (torch.compile, fullgraph=True) decodes the eager tokens, with and without
    tune_gemv's inductor options, two compiled decoders in one process as in bench/decode.py."""
    embeds, mask = _left_padded(llm, [5, 9, 3])
    expected = _generate(llm, embeds, mask, max_new_tokens=12, min_new_tokens=12)
    for tune_gemv in (True, False):
        decoder = StaticDecoder(llm, compile=True, check_every=4, tune_gemv=tune_gemv)
        for _ in range(2):  # the second call reuses the compiled step and its cache
            got = decoder.generate(embeds, mask, max_new_tokens=12, min_new_tokens=12, eos_token_id=EOS,
                                   pad_token_id=PAD)
            assert torch.equal(got, expected)


def test_decoding_passes_the_cache_by_the_name_the_installed_transformers_uses(llm):
    """transformers 5.25 renamed the forward's `past_key_values` to `cache`; the old name warns (and goes
    in 5.40), so decoding uses whichever name the model's forward takes, without a warning."""
    import inspect
    import warnings

    expected = "cache" if "cache" in inspect.signature(type(llm).forward).parameters else "past_key_values"
    decoder = StaticDecoder(llm, compile=False)
    assert decoder._cache_keyword == expected
    embeds, mask = _left_padded(llm, [5, 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoder.generate(embeds, mask, max_new_tokens=4, eos_token_id=EOS, pad_token_id=PAD)
    assert not [w for w in caught if "past_key_values" in str(w.message)]
