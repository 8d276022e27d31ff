"""The model registry: every model of the paper built by name from plain (JSON/YAML) keyword values.

``build_model(name, **kwargs)`` checks the names and values, builds the model, loads ImageNet
weights if asked, and records the full build spec (``model.build_spec``: name plus every keyword,
defaults included) so a checkpoint can rebuild the same model with ``build_model(**spec)``: the
one attribute of a model that is set from outside it.

``register_model(name, builder)`` adds a model: a function taking at least ``num_classes`` and
``input_size`` (plain JSON values only; ``heads``, {label kind: classes}, where it has label
heads) and returning a :class:`fpar.models.base.ClipModel`.
Configs, training, evaluation, export and streaming then take it by name (docs/models.md).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from fpar.data.labels import LABEL_KINDS
from fpar.errors import FparError
from fpar.models.assembled import RGBConvLSTM
from fpar.models.flow_stream import FlowResNet
from fpar.models.two_stream import TwoStream
from fpar.models.base import ClipModel
from fpar.models.ms_task import MS_TASKS
from fpar.models.pretrained import load_pretrained

GTEA61_CLASSES = 61


def _rgb_model(num_classes: int, backbone: str, pretrained: str | None, **options: Any) -> ClipModel:
    model = RGBConvLSTM(num_classes, backbone, **options)
    if pretrained:
        load_pretrained(model.backbone, pretrained)
    return model


def rgb_convlstm(num_classes: int = GTEA61_CLASSES, backbone: str = "resnet34", pretrained: str | None = None,
                 mem_size: int = 512, input_size: int = 224, ms_head: str | None = None,
                 ms_input_sigmoid: bool = False, dropout: float = 0.7, heads: dict[str, int] | None = None) -> ClipModel:
    """ConvLSTM on layer4's f, no attention (Table 1, "ConvLSTM")."""
    return _rgb_model(num_classes, backbone, pretrained, mem_size=mem_size, attention=False, ms_head=ms_head,
                      ms_input_sigmoid=ms_input_sigmoid, input_size=input_size, dropout=dropout, heads=heads)


def rgb_attention(num_classes: int = GTEA61_CLASSES, backbone: str = "resnet34", pretrained: str | None = None,
                  mem_size: int = 512, input_size: int = 224, ms_head: str | None = None,
                  ms_input_sigmoid: bool = False, dropout: float = 0.7, heads: dict[str, int] | None = None) -> ClipModel:
    """Ego-RNN: CAM attention on f_nobn + ConvLSTM (Table 1, "ConvLSTM-attention")."""
    return _rgb_model(num_classes, backbone, pretrained, mem_size=mem_size, attention=True, ms_head=ms_head,
                      ms_input_sigmoid=ms_input_sigmoid, input_size=input_size, dropout=dropout, heads=heads)


def rgb_ms(num_classes: int = GTEA61_CLASSES, backbone: str = "resnet34", pretrained: str | None = None,
           mem_size: int = 512, input_size: int = 224, ms_head: str = "classification",
           ms_input_sigmoid: bool = False, dropout: float = 0.7, heads: dict[str, int] | None = None) -> ClipModel:
    """Attention model + motion-segmentation head (Tables 2 and 3)."""
    if not ms_head:
        raise FparError(f"model 'rgb_ms' needs ms_head: one of {list(MS_TASKS)}")
    return rgb_attention(num_classes, backbone, pretrained, mem_size, input_size, ms_head, ms_input_sigmoid, dropout,
                         heads)


def flow_resnet(num_classes: int = GTEA61_CLASSES, backbone: str = "resnet34", pretrained: str | None = None,
                stack_size: int = 5, input_size: int = 224, dropout: float = 0.5,
                heads: dict[str, int] | None = None) -> ClipModel:
    """Temporal stream on a stack of flow pairs ("temporal-warp flow")."""
    model = FlowResNet(num_classes, backbone, stack_size, dropout, input_size, heads)
    if pretrained:
        load_pretrained(model.backbone, pretrained)
    return model


def two_stream(num_classes: int = GTEA61_CLASSES, backbone: str = "resnet34", pretrained: str | None = None,
               mem_size: int = 512, stack_size: int = 5, input_size: int = 224, dropout: float = 0.5,
               heads: dict[str, int] | None = None) -> ClipModel:
    """Flow + RGB-attention streams fused by one linear layer (Table 1, "two-stream")."""
    model = TwoStream(num_classes, backbone, mem_size, stack_size, dropout, input_size, heads)
    if pretrained:
        load_pretrained(model.flow_model.backbone, pretrained)
        load_pretrained(model.rgb_model.backbone, pretrained)
    return model


def two_in_one(num_classes: int = GTEA61_CLASSES, backbone: str = "resnet34", pretrained: str | None = None,
               mem_size: int = 512, input_size: int = 224, attention: bool = True, ms_head: str | None = None,
               ms_input_sigmoid: bool = False, return_modulation: bool = False, dropout: float = 0.7,
               heads: dict[str, int] | None = None) -> ClipModel:
    """RGB model whose conv1 is modulated by each frame's flow pair (Table 4)."""
    return _rgb_model(num_classes, backbone, pretrained, mem_size=mem_size, attention=attention, ms_head=ms_head,
                      ms_input_sigmoid=ms_input_sigmoid, input_size=input_size, dropout=dropout, motion=True,
                      return_modulation=return_modulation, heads=heads)


MODELS: dict[str, Callable[..., ClipModel]] = {
    "rgb_convlstm": rgb_convlstm,
    "rgb_attention": rgb_attention,
    "flow_resnet": flow_resnet,
    "two_stream": two_stream,
    "rgb_ms": rgb_ms,
    "two_in_one": two_in_one,
}


# keywords every builder takes: the dataset's class count and the crop side, from the config
REQUIRED_KEYWORDS = ("num_classes", "input_size")


def register_model(name: str, builder: Callable[..., ClipModel]) -> Callable[..., ClipModel]:
    """Add ``builder`` under ``name`` and return it; the first line of its docstring describes the
    model in ``fpar models``."""
    if name in MODELS:
        raise FparError(f"a model named '{name}' is already registered")
    missing = [key for key in REQUIRED_KEYWORDS if key not in inspect.signature(builder).parameters]
    if missing:
        raise FparError(f"model '{name}': its builder must take {', '.join(missing)}")
    MODELS[name] = builder
    return builder


def list_models() -> list[str]:
    return list(MODELS)


def describe_model(name: str) -> str:
    """The first line of the model's docstring."""
    return inspect.getdoc(MODELS[name]).splitlines()[0]


def check_values(spec: dict[str, Any]) -> None:
    """The build arguments every model shares, checked before anything is built (and when a config
    is read: ``fpar.models.settings``), so that ``--dry-run`` shows only settings a run accepts."""
    # the backbone's name is checked where it is built (fpar.models.backbone.ResNet)
    if spec.get("ms_head") not in (None, *MS_TASKS):
        raise FparError(f"unknown ms_head '{spec['ms_head']}': choose one of {list(MS_TASKS)} or null")
    for key in ("num_classes", "mem_size", "stack_size", "input_size"):
        if key in spec and (not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1):
            raise FparError(f"{key} must be a positive integer, got {spec[key]!r}")
    dropout = spec.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:  # NaN too
        raise FparError(f"dropout must be a number in [0, 1), got {dropout!r}")
    heads = spec.get("heads")
    if heads is not None:
        if not isinstance(heads, dict) or any(kind not in LABEL_KINDS for kind in heads) or any(
                not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in heads.values()):
            raise FparError(f"heads must map label kinds ({', '.join(LABEL_KINDS)}) to class counts "
                            f"(e.g. {{verb: 97, noun: 300}}), got {heads!r}")


def input_spec_of(name: str, **arguments: Any) -> dict[str, Any]:
    """The ``input_spec`` of model ``name`` built with ``arguments``, found by building it on the
    meta device (no memory allocated, no weights read, about 10 ms): what a config's data must
    give, checked when the config loads. Label heads and pretrained weights change no input."""
    import torch

    probe = {key: value for key, value in arguments.items() if key not in ("heads", "pretrained")}
    with torch.device("meta"):
        return build_model(name, **probe).input_spec()


def build_model(name: str, **kwargs: Any) -> ClipModel:
    """Build registry model ``name``; unknown names or keywords raise :class:`FparError`."""
    if name not in MODELS:
        raise FparError(f"unknown model '{name}': choose one of {list_models()}")
    builder = MODELS[name]
    signature = inspect.signature(builder)
    unknown = sorted(set(kwargs) - set(signature.parameters))
    if unknown:
        raise FparError(f"model '{name}' does not take {unknown}; it takes {list(signature.parameters)}")
    bound = signature.bind(**kwargs)
    bound.apply_defaults()
    spec = dict(bound.arguments)
    check_values(spec)
    model = builder(**spec)
    if not isinstance(model, ClipModel):
        raise FparError(f"model '{name}': its builder returned a {type(model).__name__}, not a ClipModel")
    model.build_spec = {"name": name, **spec}
    return model
