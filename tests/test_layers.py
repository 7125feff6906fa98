"""The package's architecture: the import contracts in .importlinter hold, the core names no task
family and no training engine (it reaches them through plugins.py), and no modules import each
other in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "neurorl_cli"

# Names of the built-in families, their tasks and the engines and their algorithms: the core must
# not spell any of them; it asks plugins.py instead.
PLUGIN_NAMES = (
    "neurogym", "conditioning", "meta-rl", "firefly", "doom", "harlow", "two-step", "decision",
    "sb3", "native", "sample-factory", "distributional-td", "meta-a2c-lstm", "td3",
    "RecurrentPPO", "PPO", "A2C", "APPO",
)
PLUGIN_DIRS = ("families", "engines")


def test_import_contracts_hold():
    # The venv's lint-imports, beside the interpreter running the tests (not resolved: in a venv
    # sys.executable is a link into the base Python's bin/).
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), f"{lint_imports} is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [str(lint_imports), "--no-cache", ".importlinter"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of the module, its classes and its functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.add(id(body[0].value))
    return found


def _names_a_plugin(text: str) -> bool:
    return any(text == name or text.startswith((f"{name}:", f"{name}/")) for name in PLUGIN_NAMES)


def _core_files() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if path.relative_to(PACKAGE).parts[0] not in PLUGIN_DIRS)


def test_core_names_no_family_or_engine():
    files = _core_files()
    assert files, f"no Python files under {PACKAGE}"
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        docstrings = _docstrings(tree)
        # ast.walk reaches the literal parts of f-strings too (Constant nodes in a JoinedStr).
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings and _names_a_plugin(node.value):
                found.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    assert not found, "the core names a family or an engine (ask neurorl_cli.plugins instead):\n" + "\n".join(
        f"{file}:{line}: {text!r}" for file, line, text in sorted(found))


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit to hit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:  # every successor done: close the node
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def test_strongly_connected_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}, "f": {"g"}, "g": {"f"}}
    assert sorted(_strongly_connected(graph)) == [["a", "b", "c"], ["d"], ["e"], ["f", "g"]]


def test_no_import_cycles():
    graph = grimp.build_graph("neurorl_cli", cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) & graph.modules for module in graph.modules}
    cycles = [component for component in _strongly_connected(imports) if len(component) > 1]

    def shown(component):
        members = set(component)
        lines = [f"  {importer} -> {imported} (l.{', '.join(str(d['line_number']) for d in graph.get_import_details(importer=importer, imported=imported))})"
                 for importer in component for imported in sorted(imports[importer] & members)]
        return "\n".join([" <-> ".join(component), *lines])

    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n\n".join(shown(c) for c in cycles)
