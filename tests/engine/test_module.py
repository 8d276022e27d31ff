"""The LightningModule: stage rules reach the optimiser, frozen modules stay in eval mode,
checkpoints carry the shared fpar entry and plain values only."""

import pytest
import torch
import yaml

from fpar.engine.config import validate_config
from fpar.engine.module import DivergedError, FparModule, adam
from fpar.errors import FparError

from helpers.tiny import tiny_config

CLASSES = ["a", "b", "c"]
RGB = {"name": "rgb_attention", "backbone": "resnet18", "pretrained": None, "mem_size": 8}
STAGES = {
    "rgb_stage1": (RGB, {}),
    "rgb_stage2": ({**RGB, "name": "rgb_ms", "ms_head": "classification"}, {}),
    "flow": ({"name": "flow_resnet", "backbone": "resnet18", "pretrained": None, "stack_size": 2}, {}),
    "two_stream": ({"name": "two_stream", "backbone": "resnet18", "pretrained": None, "mem_size": 8,
                    "stack_size": 2}, {}),
    "two_in_one_stage3": ({**RGB, "name": "two_in_one"}, {"train_conv1": True}),
}


# what each stage's model reads (checked when the config loads)
READS = {"flow": {"modalities": ["flow"]}, "two_stream": {"modalities": ["frames", "flow"]},
         "two_in_one_stage3": {"modalities": ["frames", "flow"], "flow_mode": "pairs"}}


def module_for(stage: str, **sections) -> FparModule:
    model, options = STAGES[stage]
    sections["data"] = {**READS.get(stage, {}), **sections.get("data", {})}
    config = tiny_config(model=model, stage={"name": stage, "options": options}, **sections)
    config["model"] = dict(model)
    return FparModule(validate_config(config), CLASSES)


def optimizer_params(optimizer) -> dict[int, str]:
    return {id(p): group["name"] for group in optimizer.param_groups for p in group["params"]}


def names(module: FparModule, ids) -> set[str]:
    return {n for n, p in module.model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("stage", list(STAGES))
def test_optimizer_holds_exactly_the_trainable_parameters(stage):
    module = module_for(stage)
    optimizer = module.configure_optimizers()["optimizer"]
    in_optimizer = optimizer_params(optimizer)
    trainable = {id(p) for p in module.model.parameters() if p.requires_grad}
    assert set(in_optimizer) == trainable
    frozen = {id(p) for p in module.model.parameters() if not p.requires_grad}
    assert bool(frozen) == (stage != "flow")


def trained(stage: str) -> set[str]:
    module = module_for(stage)
    return names(module, optimizer_params(module.configure_optimizers()["optimizer"]))


def test_stage_sets():
    stage1 = trained("rgb_stage1")
    assert stage1 and all(n.startswith(("convlstm.", "classifier.")) for n in stage1)
    stage2 = trained("rgb_stage2")
    assert {"backbone.layer4.0.conv1.weight", "backbone.layer4.1.conv2.weight", "backbone.fc.weight",
            "ms_head.fc.weight"} <= stage2
    assert not any(".bn" in n or "downsample" in n or n.startswith("backbone.layer3") for n in stage2)
    stage3 = trained("two_in_one_stage3")
    assert "backbone.conv1.weight" in stage3 and any(n.startswith("motion.") for n in stage3)


def test_group_lr_gives_the_flow_layer4_its_own_rate():
    module = module_for("two_stream", optimizer={"name": "sgd", "lr": 1e-2, "group_lr": {"flow_layer4": 1e-4}})
    groups = {g["name"]: g for g in module.configure_optimizers()["optimizer"].param_groups}
    assert groups["main"]["lr"] == 1e-2 and groups["flow_layer4"]["lr"] == 1e-4
    layer4 = {id(p) for p in module.model.flow_model.backbone.layer4.parameters()}
    assert {id(p) for p in groups["flow_layer4"]["params"]} == layer4
    bad = module_for("rgb_stage1", optimizer={"group_lr": {"flow_layer4": 1e-4}})
    with pytest.raises(FparError, match="optimizer.group_lr.flow_layer4"):
        bad.configure_optimizers()


def test_schedulers():
    sched = module_for("flow", scheduler={"name": "step", "step_size": 1, "gamma": 0.99}).configure_optimizers()
    assert isinstance(sched["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    multi = module_for("flow", scheduler={"name": "multistep", "milestones": [3, 7], "gamma": 0.5})
    scheduler = multi.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR) and sorted(scheduler.milestones) == [3, 7]
    assert "lr_scheduler" not in module_for("flow", scheduler={"name": "none"}).configure_optimizers()


def test_frozen_backbone_stays_in_eval_mode_while_training():
    module = module_for("rgb_stage2")
    module.configure_optimizers()
    module.on_train_epoch_start()
    assert module.model.convlstm.training and module.model.classifier.training
    assert not module.model.backbone.training and not module.model.backbone.layer4[0].bn1.training


def test_checkpoint_entry_is_plain_and_refuses_nonfinite_weights():
    module = module_for("rgb_stage1")
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    info = checkpoint["fpar"]
    assert info["model"]["name"] == "rgb_attention" and info["model"]["num_classes"] == 3
    assert info["model"]["input_size"] == 48 and info["classes"] == CLASSES
    assert info["clip"] == module.config.data.clip.model_dump() and info["config"] == module.config.as_dict()
    # plain YAML-able values only (so weights_only loading works)
    assert yaml.safe_load(yaml.safe_dump(info)) == info
    assert yaml.safe_load(yaml.safe_dump(dict(module.hparams))) == dict(module.hparams)
    with torch.no_grad():
        module.model.classifier[1].weight[0, 0] = float("nan")
    with pytest.raises(DivergedError, match="classifier.1.weight"):
        module.on_save_checkpoint({})


def test_num_classes_smaller_than_the_dataset_is_an_error():
    config = validate_config(tiny_config(model={"num_classes": 2}))
    with pytest.raises(FparError, match="model.num_classes"):
        FparModule(config, CLASSES)


def test_adam_is_fused_on_a_cpu_and_updates_as_plain_adam():
    torch.manual_seed(0)
    start = torch.randn(64, 32, 3, 3).contiguous(memory_format=torch.channels_last)
    grads = [torch.randn_like(start) for _ in range(5)]
    weights = []
    for make in (torch.optim.Adam, adam):
        weight = torch.nn.Parameter(start.clone())
        optimizer = make([{"params": [weight]}], lr=1e-3, weight_decay=4e-5, eps=1e-4)
        for grad in grads:
            weight.grad = grad.clone()
            optimizer.step()
        weights.append(weight.detach())
    assert optimizer.defaults["fused"]
    torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=1e-6)
    assert (weights[0] - start).abs().max() > 1e-3  # the steps moved the weights
