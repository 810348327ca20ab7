import pytest

from meerkat.config import PRESETS, LossConfig, MeerkatConfig, get_preset


def test_json_round_trip_keeps_every_field(tmp_path):
    cfg = get_preset("tiny")
    cfg.loss.ot_weight = 0.5
    cfg.llm.lora.r = 4
    cfg.save(tmp_path / "c.json")
    loaded = MeerkatConfig.load(tmp_path / "c.json")
    assert loaded == cfg
    assert isinstance(loaded.loss, LossConfig) and loaded.llm.lora.r == 4


def test_unknown_keys_are_named_with_their_path():
    data = get_preset("tiny").to_dict()
    data["loss"]["ot_wieght"] = 1.0
    with pytest.raises(ValueError, match=r"config\.loss: unknown key\(s\) \['ot_wieght'\]"):
        MeerkatConfig.from_dict(data)


def test_a_broken_config_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "meerkat_config.json"
    path.write_text('{"loss": {"ot_weight": 1.0,}}')
    with pytest.raises(ValueError, match=rf"{path} is not valid JSON: Expecting property name .* line 1 column 28"):
        MeerkatConfig.load(path)
    path.write_text('{"loss": {"ot_wieght": 1.0}}')
    with pytest.raises(ValueError, match=rf"{path}\.loss: unknown key\(s\) \['ot_wieght'\]"):
        MeerkatConfig.load(path)


def test_lora_can_be_turned_off_in_json():
    data = get_preset("tiny").to_dict()
    data["llm"]["lora"] = None
    assert MeerkatConfig.from_dict(data).llm.lora is None


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*meerkat-7b.*tiny"):
        get_preset("huge")


def test_7b_preset_names_the_production_parts(monkeypatch):
    monkeypatch.setenv("MEERKAT_LLAMA_DIR", "/models/llama")
    cfg = get_preset("meerkat-7b")
    assert cfg.vision.model_name == "ViT-B-16-quickgelu" and cfg.vision.model_cfg is None
    assert cfg.audio.htsat["embed_dim"] == 128 and cfg.audio.clip_samples == 480_000
    assert cfg.llm.path == "/models/llama" and cfg.llm.dtype == "bfloat16"
    assert not cfg.random_init
    assert set(PRESETS) == {"tiny", "small", "meerkat-7b"}


def test_only_the_small_preset_drops_the_system_prompt():
    assert get_preset("small").llm.system_prompt is False
    assert get_preset("tiny").llm.system_prompt and get_preset("meerkat-7b").llm.system_prompt
    older = get_preset("small").to_dict()
    del older["llm"]["system_prompt"]  # a checkpoint saved before the setting existed trained with it
    assert MeerkatConfig.from_dict(older).llm.system_prompt is True
