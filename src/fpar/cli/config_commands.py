"""``fpar configs``: the packaged experiment configs (list, show) and their JSON schema, for editors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    configs = subparsers.add_parser("configs", help="packaged experiment configs and their schema")
    actions = configs.add_subparsers(dest="configs_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="names of the packaged configs and recipes",
        description="Every command that takes a CONFIG or RECIPE accepts these names as well as file paths.")
    listing.add_argument("pattern", nargs="?", metavar="PATTERN",
                         help="keep names containing it (shell wildcards allowed), e.g. gtea61/ or 'two-in-one*ml'")
    listing.set_defaults(func=list_command)
    show = actions.add_parser(
        "show", help="print a config resolved: _base_ files merged, overrides applied, defaults filled",
        description="The YAML a run with this config would write as its config.yaml; a start for your own.")
    show.add_argument("config", metavar="CONFIG", help="packaged config name, YAML path or run folder")
    show.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    show.set_defaults(func=show_command)
    diff = actions.add_parser(
        "diff", help="the settings two configs (or run folders) differ in",
        description="Both resolved (bases merged, defaults filled) and compared key by key; a run folder "
                    "stands for the config.yaml it was trained with. Exit 0 when they are the same, 1 when not.")
    diff.add_argument("a", metavar="A", help="packaged config name, YAML path or run folder")
    diff.add_argument("b", metavar="B", help="packaged config name, YAML path or run folder")
    diff.set_defaults(func=diff_command)
    schema = actions.add_parser(
        "schema", help="write the JSON schema of experiment configs",
        description="An editor given this schema (e.g. YAML language server: `# yaml-language-server: "
                    "$schema=fpar-config.schema.json`) validates and completes experiment configs.")
    schema.add_argument("out", nargs="?", metavar="OUT", help="file to write (default: print it)")
    schema.set_defaults(func=schema_command)


def list_command(args: argparse.Namespace) -> int:
    from fpar.engine.config import list_configs
    from fpar.errors import FparError

    names = list_configs(args.pattern)
    if not names:
        raise FparError(f"no packaged config matches '{args.pattern}' (`fpar configs list` shows them all)")
    print("\n".join(names))
    return 0


def show_command(args: argparse.Namespace) -> int:
    from fpar.engine.config import config_sources, dump_config, find_config, load_config
    from fpar.engine.run_folder import RUN_CONFIG, is_run_folder, load_config_or_run

    folder = Path(args.config).expanduser()
    if is_run_folder(folder):  # a run folder: the settings it was trained with
        config = load_config_or_run(folder, args.overrides)
        print(f"# {folder / RUN_CONFIG} (run folder {folder})")
        print(dump_config(config), end="")
        return 0
    path = find_config(args.config, kind="recipe")  # configs and recipes alike
    print(f"# {path}")
    if path.parent.name == "recipes" and not args.overrides:  # a recipe: its stages, as written
        print(path.read_text(encoding="utf-8"), end="")
    else:
        text = dump_config(load_config(path, args.overrides))
        print(_with_sources(text, config_sources(path, args.overrides)), end="")
    return 0


def _with_sources(text: str, sources: dict[str, str]) -> str:
    """The dumped config with each setting's origin as a comment: the file that sets it, the command
    line, or ``default`` (the settings' own default, described by ``fpar configs schema``)."""
    import re

    lines, path = [], []  # path: (indent, key) of the mappings the line is inside
    for line in text.splitlines():
        found = re.match(r"^(\s*)([^\s:#-][^:]*):(.*)$", line)
        if found is None:
            lines.append(line)
            continue
        indent, key, value = len(found[1]), found[2], found[3].strip()
        path = [(i, k) for i, k in path if i < indent] + [(indent, key)]
        dotted = ".".join(k for _, k in path)
        origin = sources.get(dotted) or next((sources[p] for p in sources if dotted.startswith(p + ".")), None)
        nested = not value and any(p.startswith(dotted + ".") for p in sources)
        if origin is None and nested:
            lines.append(line)
            continue
        lines.append(f"{line}  # {origin or 'default'}")
    return "\n".join(lines) + "\n"


def diff_command(args: argparse.Namespace) -> int:
    from fpar.engine.config import config_diff
    from fpar.engine.run_folder import load_config_or_run

    changes = config_diff(load_config_or_run(args.a), load_config_or_run(args.b))
    if not changes:
        print(f"{args.a} and {args.b} have the same settings")
        return 0
    width = max(len("setting"), *(len(key) for key, _, _ in changes))
    left = max(len(args.a), *(len(json.dumps(a)) for _, a, _ in changes))
    print(f"{'setting':<{width}}  {args.a:<{left}}  {args.b}")
    for key, a, b in changes:
        print(f"{key:<{width}}  {json.dumps(a):<{left}}  {json.dumps(b)}")
    return 1


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
