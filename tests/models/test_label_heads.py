"""Verb and noun heads on every model family: outputs, the summed loss, the stages that train them,
and single-head checkpoints that load as before."""

import pytest
import torch
import torch.nn.functional as F

from fpar.checkpoint import load_model, save_checkpoint
from fpar.data.settings import ClipSettings
from fpar.engine.losses import total_loss
from fpar.engine.stages import configure_stage
from fpar.errors import FparError
from fpar.models import build_model
from fpar.models.base import ClipModel, example_batch
from fpar.models.losses import LossSettings
from fpar.models.settings import ModelSettings

TINY = {"backbone": "resnet18", "input_size": 32, "num_classes": 3}
FAMILIES = {
    "rgb_convlstm": {"mem_size": 8}, "rgb_attention": {"mem_size": 8}, "rgb_ms": {"mem_size": 8},
    "two_in_one": {"mem_size": 8}, "flow_resnet": {"stack_size": 2}, "two_stream": {"mem_size": 8, "stack_size": 2},
}
HEADS = {"verb": 4, "noun": 5}


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_carries_verb_and_noun_heads_trained_with_summed_cross_entropies(name):
    torch.manual_seed(0)
    model = build_model(name, heads=HEADS, **TINY, **FAMILIES[name]).eval()
    batch = example_batch(model, batch_size=2, frames=2, generator=torch.Generator().manual_seed(0))
    batch |= {"label": torch.tensor([0, 2]), "label_verb": torch.tensor([3, 1]), "label_noun": torch.tensor([4, 0])}
    out = model(batch)
    assert out["logits"].shape == (2, 3) and out["logits_verb"].shape == (2, 4) and out["logits_noun"].shape == (2, 5)
    # every head reads the same features as the action classifier
    heads = model.label_heads_module()
    assert torch.equal(out["logits_verb"], heads["verb"](out["features"]))
    assert model.loss_inputs(LossSettings()) == ("label", "label_verb", "label_noun")

    loss, terms = total_loss(model, out, batch, LossSettings())
    expected = {"ce": F.cross_entropy(out["logits"], batch["label"]),
                "ce_verb": F.cross_entropy(out["logits_verb"], batch["label_verb"]),
                "ce_noun": F.cross_entropy(out["logits_noun"], batch["label_noun"])}
    assert set(terms) == set(expected)
    for key, value in expected.items():
        assert terms[key].item() == pytest.approx(value.item())
    assert loss.item() == pytest.approx(sum(v.item() for v in expected.values()))
    assert model.build_spec["heads"] == HEADS  # a checkpoint rebuilds the same heads


@pytest.mark.parametrize("name, stage", [("rgb_attention", "rgb_stage1"), ("two_stream", "two_stream")])
def test_label_heads_train_wherever_the_action_classifier_does(name, stage):
    model = build_model(name, heads=HEADS, **TINY, **FAMILIES[name])
    configure_stage(model, stage)
    assert all(p.requires_grad for p in model.label_heads_module().parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_heads_are_checked_when_built():
    for heads in ({"adverb": 3}, {"verb": 0}, ["verb"], {"verb": True}):
        with pytest.raises(FparError, match="heads must map label kinds"):
            build_model("flow_resnet", heads=heads, **TINY, stack_size=2)


def test_a_single_head_checkpoint_from_before_label_heads_loads_and_scores_the_same(tmp_path):
    torch.manual_seed(0)
    model = build_model("rgb_attention", **TINY, mem_size=8).eval()
    assert model.label_heads_module() is None
    assert not any(key.startswith("label_heads") for key in model.state_dict())
    # a checkpoint written before label heads existed: its build spec has no `heads`
    old_spec = {key: value for key, value in model.build_spec.items() if key != "heads"}
    path = tmp_path / "old.ckpt"
    save_checkpoint(path, model_state=model.state_dict(), model=old_spec,
                    clip=ClipSettings(num_frames=2, resize=32, crop=32), classes=["a", "b", "c"])
    loaded, contract = load_model(path)
    assert contract.label_classes == {} and loaded.label_heads_module() is None
    batch = example_batch(model, batch_size=1, frames=2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(batch)["logits"], model(batch)["logits"])
        assert set(loaded(batch)) == set(model(batch))


class MeanPoolNet(ClipModel):
    """A model of its own: mean-pooled frames -> Linear; label heads by the two base-class calls."""

    def __init__(self, num_classes: int, heads: dict[str, int] | None):
        super().__init__()
        self.embed = torch.nn.Linear(3, 6)
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(6, num_classes))
        self.add_label_heads(6, heads, dropout=0.0)

    def input_spec(self):
        return {"frames": ("B", "T", 3, 8, 8)}

    def forward(self, batch, explain=False):
        features = self.embed(batch["frames"].mean(dim=(1, 3, 4)))
        return {"features": features, **self.classify(features)}


def test_a_new_model_gets_label_heads_and_their_loss_from_the_base_class():
    model = MeanPoolNet(3, {"noun": 4})
    model.build_spec = {"name": "mean_pool_net", "num_classes": 3, "heads": {"noun": 4}}
    batch = {**example_batch(model, batch_size=2, frames=2), "label": torch.tensor([0, 1]),
             "label_noun": torch.tensor([3, 2])}
    out = model(batch)
    assert set(out) == {"features", "logits", "logits_noun"}
    assert model.loss_inputs(LossSettings()) == ("label", "label_noun")
    terms = model.loss(out, batch, LossSettings())
    assert terms["ce_noun"].item() == pytest.approx(F.cross_entropy(out["logits_noun"], batch["label_noun"]).item())
    assert set(terms) == {"ce", "ce_noun"}


def test_a_config_asks_for_heads_whose_sizes_the_dataset_gives():
    settings = ModelSettings(name="rgb_attention", heads=["verb", "noun"])
    arguments = settings.build_arguments(3, 32, {"verb": ["close", "open"], "noun": ["jam", "jar", "tea"]})
    assert arguments["heads"] == {"verb": 2, "noun": 3}
    with pytest.raises(FparError, match="model.heads: the dataset has no noun labels"):
        settings.build_arguments(3, 32, {"verb": ["close"]})
    with pytest.raises(FparError, match="model.heads.verb is 1 but the dataset has 2 verb classes"):
        ModelSettings(name="rgb_attention", heads={"verb": 1}).build_arguments(3, 32, {"verb": ["a", "b"]})
    assert ModelSettings(name="rgb_attention").build_arguments(3, 32)["heads"] is None
