import re

from meerkat import demo


def test_demo_prints_four_finite_losses_that_add_up(capsys):
    demo.main()
    out = capsys.readouterr().out
    values = {name: float(v) for name, v in re.findall(r"(total|LM|OT|AC) loss\s+([0-9.]+)", out)}
    assert set(values) == {"total", "LM", "OT", "AC"}
    assert all(v > 0 for v in values.values())
    assert abs(values["total"] - (values["LM"] + 0.01 * values["OT"] + 0.2 * values["AC"])) < 2e-4
    assert re.search(r"gradient norm over trainable weights [0-9.]+", out)
