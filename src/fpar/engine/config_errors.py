"""What a config's error line says: pydantic's first complaint as ``dotted.key: what is wrong (got
value)``, with a hint for an unknown key (Lightning's name for it, a typo, the right name in the
wrong section). :func:`fpar.engine.config.validate_config` raises it as one FparError line."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fpar.engine.settings import ExperimentSettings


def first_problem(exc: ValidationError) -> str:
    """pydantic's first error as ``dotted.key: what is wrong (got value)``."""
    errors = exc.errors()
    # a union (init_from, devices) reports one error per member: name the key, list what it accepts
    error = errors[0]
    key = ".".join(str(part) for part in error["loc"] if not _is_union_member(part))
    kind, ctx = error["type"], error.get("ctx", {})
    got = f" (got {error['input']!r})" if kind not in ("extra_forbidden", "missing") else ""
    if kind == "extra_forbidden":
        return f"{key}: unknown key{key_hint(key)}"
    if kind == "missing":
        return f"{key}: is required"
    if len({".".join(map(str, e["loc"])) for e in errors}) > 1 and _is_union_member(error["loc"][-1]):
        return f"{key}: must be {_description(key) or 'another value'}{got}"
    bounds = {"greater_than_equal": ">= {ge}", "greater_than": "> {gt}", "less_than_equal": "<= {le}",
              "less_than": "< {lt}"}
    if kind in bounds:
        return f"{key}: must be {bounds[kind].format(**ctx)}{got}"
    if kind == "literal_error":
        return f"{key}: must be one of {ctx['expected'].replace(chr(39), '')}{got}"
    if kind == "finite_number":
        return f"{key}: must be a finite number{got}"
    message = error["msg"].removeprefix("Value error, ")
    if not key:  # a check across sections names its keys itself
        return f"{message}{'' if kind == 'value_error' else got}"
    return f"{key}: {message[:1].lower()}{message[1:]}{'' if kind == 'value_error' else got}"


# Lightning's (and common training scripts') names for settings fpar names otherwise: an unknown key
# that is one of them gets fpar's name as its hint.
FOREIGN_NAMES = {"max_epochs": "trainer.epochs", "min_epochs": "trainer.epochs", "devices": "trainer.devices",
                 "gpus": "trainer.devices", "precision": "trainer.precision", "accelerator": "trainer.accelerator",
                 "num_nodes": "trainer.num_nodes", "strategy": "trainer.strategy",
                 "check_val_every_n_epoch": "trainer.val_every", "log_every_n_steps": "trainer.log_every_n_steps",
                 "deterministic": "trainer.deterministic", "seed": "trainer.seed", "batch_size": "trainer.batch_size",
                 "logger": "trainer.logger", "lr": "optimizer.lr", "learning_rate": "optimizer.lr",
                 "weight_decay": "optimizer.weight_decay", "optimiser": "optimizer", "num_workers": "data.workers",
                 "workers": "data.workers", "lr_scheduler": "scheduler", "epochs": "trainer.epochs"}


def config_keys(model: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key an experiment config takes (sections and their fields)."""
    model = ExperimentSettings if model is None else model
    keys = []
    for name, info in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        section = _section_model(info.annotation)
        if section is not None:
            keys.extend(config_keys(section, f"{prefix}{name}."))
    return keys


def _section_model(annotation: Any) -> Any:
    """The settings class a field holds (``Optional[...]`` unwrapped), or None for a plain value."""
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    sections = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return sections[0] if len(sections) == 1 else None


def key_hint(dotted: str) -> str:
    """``"; did you mean trainer.epochs?"`` for an unknown dotted key (its Lightning name, a typo,
    or a key put in the wrong section); ``""`` when nothing is close."""
    import difflib

    last = dotted.rsplit(".", 1)[-1]
    keys = config_keys()
    if last in FOREIGN_NAMES and FOREIGN_NAMES[last] != dotted:
        return f"; fpar calls it {FOREIGN_NAMES[last]}"
    section = dotted.rpartition(".")[0]
    siblings = [k for k in keys if k.rpartition(".")[0] == section]
    near = _best(dotted, difflib.get_close_matches(dotted, siblings, n=2, cutoff=0.6))
    near += [k for k in keys if k.rsplit(".", 1)[-1] == last and k not in near]  # right name, wrong section
    near = near or _best(dotted, difflib.get_close_matches(dotted, keys, n=2, cutoff=0.7))
    return f"; did you mean {' or '.join(near[:3])}?" if near else ""


def _best(word: str, matches: list[str]) -> list[str]:
    """``matches`` (difflib's, best first) without those clearly worse than the first."""
    import difflib

    ratios = [difflib.SequenceMatcher(None, word, m).ratio() for m in matches]
    return [m for m, r in zip(matches, ratios) if r >= ratios[0] - 0.1]


def _description(dotted: str) -> str | None:
    """The ``description`` of the settings field at ``dotted`` (what a union field accepts)."""
    model: Any = ExperimentSettings
    info = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info.description if info is not None else None


def _is_union_member(part: Any) -> bool:
    # pydantic names union members in the location ("int", "literal['auto']", "str", "dict[str,str]")
    return isinstance(part, str) and (part in ("int", "str", "float", "bool", "none") or "[" in part
                                      or part.startswith("constrained-"))
