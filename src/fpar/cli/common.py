"""Argument helpers shared by command modules."""

from __future__ import annotations

import argparse
import math


class IntermixedParser(argparse.ArgumentParser):
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
