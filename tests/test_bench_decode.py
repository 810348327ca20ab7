"""CPU smoke of bench/decode.py: every row runs and the table holds real figures and ratios."""

import importlib.util
import re
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("decode", Path(__file__).parent.parent / "bench" / "decode.py")
decode = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(decode)


def test_bench_prints_plain_and_static_decoding_with_ratios(capsys):
    decode.main(["--new_tokens", "4", "--batches", "1,2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "tiny shapes" in out and "4 new tokens" in out
    rows = re.findall(r"^(plain transformers generate|meerkat StaticDecoder[^\d]*?)\s+(\d+)\s+([\d,.]+)\s*([\d.]+)?$", out, re.M)
    assert [(label.strip(), int(batch)) for label, batch, *_ in rows] == [
        (label, batch) for batch in (1, 2) for label in (
            "plain transformers generate", "meerkat StaticDecoder (media encode + decode)",
            "meerkat StaticDecoder, decode only (media encoded)")]
    for label, batch, speed, ratio in rows:
        assert float(speed.replace(",", "")) > 0
        assert (ratio == "") == label.startswith("plain") and (ratio == "" or float(ratio) > 0)
