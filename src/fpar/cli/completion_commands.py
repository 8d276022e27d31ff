"""``fpar completion bash|zsh``: a shell completion script made from fpar's own parser (shtab)."""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")


def register(subparsers: argparse._SubParsersAction) -> None:
    completion = subparsers.add_parser(
        "completion", help="print a shell completion script (commands, options, choices)",
        description="bash: `fpar completion bash > ~/.local/share/bash-completion/completions/fpar`; "
                    "zsh: `fpar completion zsh > ~/.zfunc/_fpar` (with ~/.zfunc on $fpath). "
                    "Made from the parser, so it lists exactly what this fpar accepts.")
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(func=completion_command)


def completion_command(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(args.root_parser, shell=args.shell), end="")
    return 0
