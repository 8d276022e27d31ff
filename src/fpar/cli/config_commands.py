"""``fpar configs schema``: the JSON schema of experiment configs, for editors."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    configs = subparsers.add_parser("configs", help="experiment config tools")
    actions = configs.add_subparsers(dest="configs_command", metavar="ACTION", required=True)
    schema = actions.add_parser(
        "schema", help="write the JSON schema of experiment configs",
        description="An editor given this schema (e.g. YAML language server: `# yaml-language-server: "
                    "$schema=fpar-config.schema.json`) validates and completes experiment configs.")
    schema.add_argument("out", nargs="?", metavar="OUT", help="file to write (default: print it)")
    schema.set_defaults(func=schema_command)


def schema_command(args: argparse.Namespace) -> int:
    from fpar.engine.config import json_schema
    from fpar.io import write_text

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
