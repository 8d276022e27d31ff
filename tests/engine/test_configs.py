"""Every packaged config (src/fpar/configs/) loads, builds its model, and chains to a checkpoint it can start from."""

import functools
import re

import pytest
import yaml

from fpar.checkpoint import save_checkpoint
from fpar.engine.config import CONFIG_DIR as CONFIGS, load_config
from fpar.engine.module import model_spec
from fpar.engine.init_weights import load_init_weights
from fpar.models import build_model

EXPERIMENTS = sorted(p for folder in ("gtea61", "synthetic") for p in (CONFIGS / folder).glob("*.yaml"))
NAME = re.compile(r"^[a-z0-9-]+_r(18|34)_\d+[fs]_[a-z0-9-]+$")  # <modality-model>_<backbone>_<frames>_<stage>


def classes_of(config):
    return [f"c{i}" for i in range(61 if config.model.backbone == "resnet34" else 12)]


def build(config):
    """The config's model; many configs share one model section, each distinct one is built once."""
    return _build(yaml.safe_dump(model_spec(config, classes_of(config)), sort_keys=True))


@functools.lru_cache(maxsize=None)
def _build(spec):
    return build_model(**yaml.safe_load(spec))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_loads_and_builds_its_model(path):
    config = load_config(path, ["model.pretrained=null"])  # offline: the weights file is not needed here
    assert config.experiment == path.stem and NAME.match(path.stem)
    model = build(config)
    assert model.build_spec["name"] == config.model.name


@pytest.mark.parametrize("path", sorted((CONFIGS / "gtea61").glob("*.yaml")), ids=lambda p: p.stem)
def test_gtea61_config_records_its_paper_row(path):
    header = path.read_text().splitlines()[0]
    assert header.startswith("# Table") or "Ego-RNN" in header
    if path.stem.endswith(("stage2", "joint")) or "stage3" in path.stem:
        assert re.search(r"Paper: \d+\.\d%", path.read_text())


def test_gtea61_chains_start_from_checkpoints_that_fit(tmp_path):
    """Each init_from names another config's run, and that run's weights load into this model.

    ResNet-18 stands in for ResNet-34 to keep the checkpoints small; the module structure is the same.
    """
    paths = {p.stem: p for p in (CONFIGS / "gtea61").glob("*.yaml")}
    small = ["model.pretrained=null", "model.backbone=resnet18"]
    saved = set()
    for name, path in sorted(paths.items()):
        config = load_config(path, small)
        init_from = config.init_from
        if init_from is None:
            continue
        entries = {"": init_from} if isinstance(init_from, str) else init_from
        for submodule, ckpt in entries.items():
            source, best = ckpt.split("/")
            assert best == "best.ckpt" and source in paths, f"{name}: init_from {ckpt} is no config's run"
            if source not in saved:
                source_config = load_config(paths[source], small)
                source_model = build(source_config)
                save_checkpoint(tmp_path / ckpt, model_state=source_model.state_dict(),
                                model=source_model.build_spec, clip=source_config.data.clip,
                                classes=classes_of(source_config))
                saved.add(source)
        model = build(config)
        load_init_weights(model, {k: str(tmp_path / v) for k, v in entries.items()} if submodule else
                          str(tmp_path / init_from), classes_of(config))
