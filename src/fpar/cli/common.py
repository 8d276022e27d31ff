"""Argument helpers shared by command modules."""

from __future__ import annotations

import argparse


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


def at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def devices(text: str) -> int | str:
    """``--devices``: a count, or ``auto``."""
    return text if text == "auto" else int(text)
