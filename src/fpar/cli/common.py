"""Argument helpers shared by command modules."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re

from fpar.errors import FparError


def closest(word: str, candidates, n: int = 3) -> list[str]:
    """The candidates nearest to ``word`` (difflib's ratio), best first: the "did you mean" of every hint."""
    return difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=0.6)


def did_you_mean(word: str, candidates) -> str:
    """``"; did you mean 'train'?"`` or ``""`` when nothing is close."""
    near = closest(word, candidates)
    return f"; did you mean {' or '.join(repr(c) for c in near)}?" if near else ""


class FparParser(argparse.ArgumentParser):
    """Every fpar parser: no abbreviated options (``--device`` is never read as a prefix of
    ``--devices``), and a wrong choice (a command, a method, ...) answered with the closest valid ones."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _check_value(self, action, value):
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{did_you_mean(value, action.choices)} (choose from {choices})")


class IntermixedParser(FparParser):
    """Lets positionals follow options (``CONFIG --data ROOT key=value``); plain argparse stops
    filling a ``*`` positional at the first option."""

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "_intermixing", False):  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def intermixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make a sub-command's parser an :class:`IntermixedParser` (``add_parser`` takes no class)."""
    parser.__class__ = IntermixedParser
    return parser


def at_least(minimum: int, maximum: int | None = None):
    """An argparse type: an integer no smaller than ``minimum`` (and no larger than ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def number_in(low: float, high: float):
    """An argparse type: a finite number from ``low`` to ``high`` (a frame rate)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def positive_number(maximum: float):
    """An argparse type: a finite number > 0 and <= ``maximum`` (a rate, a scale)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(f"must be a number > 0 and <= {maximum:g}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


MAX_PROCESSES = 4096  # devices or nodes; the settings' bound too


def devices(text: str) -> int | str:
    """``--devices``: a count (1 or more), or ``auto``."""
    return text if text == "auto" else at_least(1, MAX_PROCESSES)(text)


devices.__name__ = "devices"


# ---------------------------------------------------------------------------- --device

DEVICE_FORM = re.compile(r"cpu|cuda(:\d+)?")


def device(text: str) -> str:
    """``--device``: ``cpu``, ``cuda`` (the first visible GPU) or ``cuda:N``; the one reading every
    computing command shares (whether the machine has it is :func:`require_device`'s job)."""
    value = text.strip().lower()
    if not DEVICE_FORM.fullmatch(value):
        hint = "; did you mean 'cuda'?" if value.startswith("gpu") else did_you_mean(value, ("cpu", "cuda", "cuda:0"))
        raise argparse.ArgumentTypeError(f"not a device: {text!r}{hint} (cpu, cuda or cuda:N)")
    return value


device.__name__ = "device"


def add_compute_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--device`` and ``--verbose``, worded the same on every command that computes."""
    fallback = f"default {default}" if default else "default: a GPU if there is one, else the CPU"
    parser.add_argument("--device", type=device, default=default, metavar="DEVICE",
                        help=f"where to compute: cpu, cuda or cuda:N ({fallback})")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also print status lines (the precision chosen and why, ...)")


def require_device(value: str | None) -> str | None:
    """Check once, before any work starts, that this machine has ``value``; one FparError line if not.

    ``cuda:N`` is checked against the GPUs PyTorch sees. Returns ``value`` (``None``: not given)."""
    if value is None or value == "cpu":
        return value
    import torch

    if not torch.cuda.is_available():
        raise FparError(f"--device {value}: this PyTorch ({torch.__version__}) sees no CUDA GPU here; "
                        "use --device cpu")
    index = int(value.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise FparError(f"--device {value}: this machine has {count} CUDA GPU{'s' * (count != 1)} "
                        f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return value


def accelerator_for(value: str | None, default: str = "auto") -> str:
    """Lightning's ``accelerator`` for ``--device`` (checked by :func:`require_device`).

    ``cuda:N`` shows the run only GPU N (``CUDA_VISIBLE_DEVICES``), so Lightning's device 0 is it."""
    if value is None:
        return default
    if value == "cpu":
        return "cpu"
    index = value.partition(":")[2]
    if index:
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[int(index)] if visible else index
    return "cuda"
