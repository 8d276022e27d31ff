"""The package's layers import only downwards (ARCHITECTURE.md), and each vocabulary the CLI
offers is the one its owner declares."""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
PACKAGE = SRC / "fpar"

# Lower layers first; a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    {"errors", "io", "locking", "lazy", "progress"},
    {"data", "prepare"},
    {"pictures"},
    {"models"},
    {"checkpoint"},
    {"interop", "engine"},
    {"viz"},
    {"workflows", "bench"},
    {"cli"},
    {"__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
# Within one layer the packages stay independent where the order says so.
FORBIDDEN_SIDEWAYS = {("data", "prepare"), ("interop", "engine"), ("engine", "interop")}


def _part(module: str) -> str | None:
    """``fpar.engine.train`` -> ``engine``; the package root itself -> None."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "fpar" else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "fpar":  # `from fpar import x`: x is the part imported
                found += [(node.lineno, f"fpar.{alias.name}") for alias in node.names
                          if not alias.name.startswith("__")]  # dunders are the root's own (__version__)
    return found + [(0, name) for name in sorted(_imports_by_name(tree, _module_names()))]


@functools.lru_cache(maxsize=1)
def _module_names() -> frozenset[str]:
    return frozenset(module for _, module in _modules())


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        yield path, module


@pytest.mark.parametrize("path, module", list(_modules()), ids=lambda value: str(value).split("src/")[-1])
def test_imports_point_down_the_layers(path, module):
    own = _part(module)
    if own is None:
        return  # the package root (version) imports nothing
    assert own in RANK, f"{module}: package '{own}' has no place in the layer order (add it to ARCHITECTURE.md)"
    for line, target in _imports(path):
        theirs = _part(target)
        if theirs is None or theirs == own:
            continue
        assert theirs in RANK, f"{module}:{line} imports {target}, which has no layer"
        assert RANK[theirs] <= RANK[own], f"{module}:{line} imports {target}: '{own}' sits below '{theirs}'"
        assert (own, theirs) not in FORBIDDEN_SIDEWAYS, f"{module}:{line} imports {target} sideways"


def test_building_the_cli_loads_neither_torch_nor_lightning_nor_opencv():
    code = ("import sys\nfrom fpar.cli import build_parser\nbuild_parser()\n"
            "print(','.join(m for m in ('torch', 'lightning', 'cv2') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(SRC), "PATH": ""})
    assert result.stdout.strip() == ""


def _choices(parser, *path: str, option: str) -> tuple:
    """The ``choices`` of ``option`` on the sub-command reached by ``path``."""
    for name in path:
        subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = subparsers.choices[name]
    action = next(a for a in parser._actions if option in a.option_strings or a.dest == option)
    return tuple(action.choices)


def test_the_cli_offers_each_vocabulary_its_owner_declares():
    from fpar.cli import build_parser
    from fpar.data.layouts import layout_names
    from fpar.data.settings import MODALITIES
    from fpar.data.store import CODECS
    from fpar.data.transforms import VIEWS
    from fpar.engine.settings import PRECISIONS
    from fpar.interop.contract import KINDS
    from fpar.models.vocabulary import BLOCKS_PER_STAGE
    from fpar.prepare.flow import FLOW_METHODS

    parser = build_parser()
    assert _choices(parser, "eval", option="--views") == VIEWS
    for command in (("data", "check"), ("cache",)):
        assert _choices(parser, *command, option="--layout") == ("auto", *layout_names())
    assert _choices(parser, "cache", option="--modalities") == MODALITIES
    assert _choices(parser, "cache", option="--codec") == ("auto", *CODECS)
    for command in ("train", "run", "sweep"):
        assert _choices(parser, command, option="--precision") == PRECISIONS
    for command in ("predict", "cam", "prepare", "prepare-gtea"):
        assert _choices(parser, command, option="--flow") == FLOW_METHODS
    assert _choices(parser, "flow", option="--method") == FLOW_METHODS
    assert _choices(parser, "import-reference", option="kind") == tuple(KINDS)
    assert _choices(parser, "models", option="--backbone") == tuple(sorted(BLOCKS_PER_STAGE))


def test_settings_accept_exactly_each_owners_vocabulary():
    from typing import get_args

    from fpar.data.layouts import layout_names
    from fpar.data.settings import FLOW_MODES, MODALITIES, ClipSettings, DataSettings
    from fpar.engine.settings import PRECISIONS, StageSettings, TrainerSettings
    from fpar.engine.stages import STAGES
    from fpar.errors import FparError
    from fpar.models.ms_task import MS_REGRESSION_LOSSES, MS_TASKS, MSLossSettings

    def literal(model, field):
        annotation = model.model_fields[field].annotation
        while not get_args(annotation) or get_args(annotation)[0].__class__.__name__ != "str":
            annotation = get_args(annotation)[0]
        return get_args(annotation)

    assert literal(ClipSettings, "modalities") == MODALITIES
    assert literal(ClipSettings, "flow_mode") == FLOW_MODES
    for layout in ("auto", *layout_names()):
        assert DataSettings(layout=layout).layout == layout
    # every registered layout, those a test registered out of tree too
    with pytest.raises(FparError, match=rf"must be one of auto, {', '.join(layout_names())} \(got 'ego'\)$"):
        DataSettings(layout="ego")
    assert literal(StageSettings, "name") == STAGES
    assert literal(TrainerSettings, "precision") == PRECISIONS
    assert literal(MSLossSettings, "kind") == MS_TASKS
    assert literal(MSLossSettings, "regression") == tuple(MS_REGRESSION_LOSSES)


# Lightning objects fpar's code holds; their underscore members change between Lightning releases.
LIGHTNING_PRIVATE_ACCESS = re.compile(r"\b(trainer|strategy|pl_module|lightning_module|checkpoint_callback|"
                                      r"accelerator|precision_plugin|checkpoint_io|fit_loop)\._[a-zA-Z]\w*")


def test_only_public_lightning_api_is_used():
    """No Lightning member with a leading underscore: not reached into, not imported, not overridden."""
    import importlib
    import inspect

    found = []
    for path, module in _modules():
        text = path.read_text(encoding="utf-8")
        found += [f"{module}:{text.count(chr(10), 0, m.start()) + 1} uses {m.group(0)}"
                  for m in LIGHTNING_PRIVATE_ACCESS.finditer(text)]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lightning":
                names = [*node.module.split("."), *(alias.name for alias in node.names)]
                found += [f"{module}:{node.lineno} imports {name} from {node.module}"
                          for name in names if name.startswith("_")]
        if "lightning" not in text:
            continue
        for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if cls.__module__ != module:
                continue
            lightning_bases = [base for base in cls.__mro__[1:] if base.__module__.split(".")[0] == "lightning"]
            found += [f"{module}.{cls.__name__} overrides {base.__name__}.{name}"
                      for name in vars(cls) if name.startswith("_") and not name.startswith(("__", "_abc_"))
                      for base in lightning_bases if name in vars(base)]
    assert not found, "\n".join(found)


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package's ``_EXPORTS`` (``fpar.lazy``): public name -> the module that defines it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            exports = ast.literal_eval(node.value)
            return {name: target if isinstance(target, str) else target[0] for name, target in exports.items()}
    return {}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the fpar modules it imports, at the top or inside functions. A name taken from a
    package is an edge to the module defining it (a submodule, or where ``_EXPORTS`` sends it)."""
    paths = dict((module, path) for path, module in _modules())
    exports = {module: _lazy_exports(path) for module, path in paths.items() if path.name == "__init__.py"}
    graph = {}
    for module, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in paths else
                                exports.get(node.module, {}).get(alias.name, node.module))
        targets |= _imports_by_name(ast.parse(path.read_text(encoding="utf-8")), paths)
        graph[module] = {target for target in targets if target in paths and target != module}
    return graph


def _imports_by_name(tree: ast.AST, modules) -> set[str]:
    """Modules imported by name: ``import_module("fpar.x")``, and lists of module names (such as
    ``COMMAND_MODULES``) that a module imports one by one."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
            found |= {arg.value for arg in node.args[:1] if isinstance(arg, ast.Constant)}
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts and all(
                isinstance(e, ast.Constant) and e.value in modules for e in node.elts):
            found |= {e.value for e in node.elts}
    return {name for name in found if name in modules}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in graph[module]:
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            component = {stack.pop()}
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    cycles = [sorted(cycle) for cycle in _cycles(_import_graph())]
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_finder_sees_imports_inside_functions():
    graph = _import_graph()
    assert "fpar.cli.cache_commands" in graph["fpar.cli"]  # imported by name (COMMAND_MODULES)
    assert "fpar.engine.distributed_eval" in graph["fpar.engine.evaluate"]  # imported inside evaluate()
    assert "fpar.data.dataset" in graph["fpar.engine.evaluate"]  # `from fpar.data import ClipDataset`
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


# Values a module owns (ARCHITECTURE.md, "Who owns what"): a literal copy of one anywhere else in
# src/ is a second statement of the fact. Each entry: what, the owner (a file or a folder under
# src/fpar), the values.
def _owned_values() -> list[tuple[str, str, tuple]]:
    from fpar.checkpoint import EXPORT_CONTRACT, EXPORT_ONNX, EXPORT_WEIGHTS
    from fpar.data.frames import FLOW_BOUND
    from fpar.data.layouts import LAYOUTS
    from fpar.data.store import format as store_format
    from fpar.engine import metric_registry
    from fpar.engine.run_folder import RUN_FILES

    store_files = (store_format.INDEX_NAME, store_format.TABLE_NAME, store_format.SOURCES_NAME,
                   store_format.PROGRESS_NAME, store_format.ENTRIES_NAME, store_format.MERGE_NAME)
    # every name a metric goes by (in results, a protocol's files, Lightning's log) and every key and
    # column a validation number is logged under (val/acc, val_accuracy, val/verb_acc, ...)
    metric_names = tuple(dict.fromkeys(name for metric in metric_registry.METRICS.values()
                                       for name in (metric.name, metric.short, metric.logged)))
    metric_names += metric_registry.JOINT[:2]
    logged = tuple(name for key, column, _ in metric_registry.validation_numbers() for name in (key, column))
    return [("layout name", "data/layouts/", LAYOUTS), ("store file", "data/store/", store_files),
            ("export file", "checkpoint.py", (EXPORT_WEIGHTS, EXPORT_ONNX, EXPORT_CONTRACT)),
            ("flow bound", "data/frames.py", (FLOW_BOUND,)), ("run-folder file", "engine/run_folder.py", RUN_FILES),
            ("metric name", "engine/metric_registry.py", metric_names),
            ("logged metric key", "engine/metric_registry.py", logged)]



def _literal_copies(package: Path = PACKAGE) -> list[str]:
    """``file:line: what 'value' (owned by OWNER)`` for each literal equal to an owned value outside
    its owner (docstrings aside: they may name the value they document)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(node.body[0].value) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or id(node) in docs or isinstance(node.value, bool):
                continue
            for what, owner, values in _owned_values():
                if relative.startswith(owner):
                    continue
                if any(type(node.value) is type(value) and node.value == value for value in values):
                    found.append(f"{relative}:{node.lineno}: {what} {node.value!r} (owned by {owner})")
    return found


def test_no_module_restates_a_value_another_owns():
    copies = _literal_copies()
    assert not copies, "import these from their owners:\n" + "\n".join(copies)


@pytest.mark.parametrize("planted, what", [('LAYOUT = "egornn"', "layout name"), ("BOUND = 20.0", "flow bound"),
                                           ('CONFIG = "config.yaml"', "run-folder file"),
                                           ('WEIGHTS = "model.safetensors"', "export file"),
                                           ('SHORT = "mean_class"', "metric name"),
                                           ('MONITOR = "val/acc"', "logged metric key"),
                                           ('COLUMN = "val_verb_accuracy"', "logged metric key")])
def test_a_planted_copy_of_an_owned_value_is_found(tmp_path, planted, what):
    package = tmp_path / "fpar"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__", "configs"))
    module = package / "viz" / "planted.py"
    module.write_text(f'"""A module that restates an owned value."""\n\n{planted}\n')
    assert _literal_copies(package) == [f"viz/planted.py:3: {what} {ast.literal_eval(planted.split(' = ')[1])!r} "
                                        f"(owned by {next(o for w, o, _ in _owned_values() if w == what)})"]


# A module a newcomer reads in one sitting; past this, split it along its seams (ARCHITECTURE.md).
MAX_MODULE_LINES = 400


def test_no_module_is_over_the_line_limit():
    long = {path.relative_to(PACKAGE).as_posix(): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them along their seams): {long}"
