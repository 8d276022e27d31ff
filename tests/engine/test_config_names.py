"""Configs and recipes by name: the packaged ones ship with fpar; a path of the user's own wins."""

import pytest
import yaml

from fpar.cli import main
from fpar.engine.config import CONFIG_DIR, find_config, list_configs, load_config, validate_config
from fpar.errors import FparError
from fpar.workflows.recipe import load_recipe


def test_a_name_resolves_to_the_packaged_file_with_or_without_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = CONFIG_DIR / "gtea61" / "rgb-attention_r34_16f_stage2.yaml"
    assert find_config("gtea61/rgb-attention_r34_16f_stage2") == packaged
    assert find_config("gtea61/rgb-attention_r34_16f_stage2.yaml") == packaged
    assert load_config("gtea61/rgb-attention_r34_16f_stage2").experiment == "rgb-attention_r34_16f_stage2"
    assert find_config("gtea61_two-stream_16f", kind="recipe") == CONFIG_DIR / "recipes" / "gtea61_two-stream_16f.yaml"


def test_an_existing_path_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "gtea61" / "rgb-attention_r34_16f_stage2.yaml"
    mine.parent.mkdir()
    mine.write_text(f"_base_: {CONFIG_DIR / 'gtea61' / 'rgb-attention_r34_16f_stage2.yaml'}\nexperiment: mine\n")
    assert find_config("gtea61/rgb-attention_r34_16f_stage2.yaml") == mine.relative_to(tmp_path)
    assert load_config("gtea61/rgb-attention_r34_16f_stage2.yaml").experiment == "mine"


def test_an_unknown_name_is_one_line_pointing_at_the_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FparError, match="no packaged config is named 'gtea61/nope'.*fpar configs list") as info:
        load_config("gtea61/nope")
    assert "\n" not in str(info.value)
    with pytest.raises(FparError, match="config not found"):
        load_recipe("nope")


def test_list_filters_and_leaves_out_base_pieces():
    names = list_configs()
    assert "gtea61/flow_r34_5s_flow300" in names and "recipes/synthetic_demo" in names
    assert not any(name.startswith("_base_") for name in names)
    assert list_configs("gtea61/two-stream_r34") == ["gtea61/two-stream_r34_16f_joint", "gtea61/two-stream_r34_7f_joint"]
    assert set(list_configs("synthetic/*")) == {n for n in names if n.startswith("synthetic/")}


def test_configs_list_and_show_commands(capsys):
    assert main(["configs", "list", "recipes/"]) == 0
    assert "recipes/gtea61_two-in-one" in capsys.readouterr().out.split()
    assert main(["configs", "list", "no-such-thing"]) == 1
    assert "no packaged config matches" in capsys.readouterr().err

    assert main(["configs", "show", "synthetic/flow_r18_5s_scratch", "trainer.epochs=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)  # the path line is a YAML comment
    settings = validate_config(shown)
    assert settings.trainer.epochs == 3
    assert settings == load_config("synthetic/flow_r18_5s_scratch", ["trainer.epochs=3"])

    assert main(["configs", "show", "synthetic_demo"]) == 0
    assert "stages:" in capsys.readouterr().out


def test_a_recipe_of_ones_own_names_packaged_configs(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("stages:\n  - {name: flow, config: synthetic/flow_r18_5s_scratch}\n"
                      "  - {name: rgb, config: gtea61/rgb-attention_r34_16f_stage2.yaml}\n")
    stages = load_recipe(recipe)
    assert [s["config"].experiment for s in stages] == ["flow_r18_5s_scratch", "rgb-attention_r34_16f_stage2"]
