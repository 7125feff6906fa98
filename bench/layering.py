"""How much of the core knows task families and engines by name, and its import cycles.

    python bench/layering.py [--json]

Counts, per module: `if`/`elif`/conditional expressions and comparisons whose test names a
built-in family or task kind outside the families' own packages, or an engine or algorithm outside
the engines' own; name literals of either kind in the core (outside both);
and the import cycles between neurorl_cli's modules (strongly connected components of the
static import graph, found with grimp, import-linter's graph library).
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "neurorl_cli"
FAMILY_NAMES = {"neurogym", "conditioning", "meta-rl", "firefly", "doom", "harlow", "two-step", "decision"}
ENGINE_NAMES = {"sb3", "native", "sample-factory", "distributional-td", "meta-a2c-lstm", "td3",
                "RecurrentPPO", "PPO", "A2C", "APPO"}
# Where a family's or an engine's own code lives (envs/ and backends/ before the plug-in layout).
FAMILY_DIRS = ("families", "envs")
ENGINE_DIRS = ("engines", "backends")


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _names_in(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Constant) and n.value in names for n in ast.walk(node))


def branches(tree: ast.AST, names: set[str]) -> int:
    tests = [n.test for n in ast.walk(tree) if isinstance(n, ast.If | ast.IfExp | ast.While)]
    tests += [n for n in ast.walk(tree) if isinstance(n, ast.Compare) and not any(n in ast.walk(t) for t in tests)]
    return sum(_names_in(t, names) for t in tests)


def literals(tree: ast.AST, names: set[str]) -> int:
    return sum(isinstance(n, ast.Constant) and n.value in names for n in ast.walk(tree))


def cycles() -> list[list[str]]:
    """Import cycles between modules: strongly connected components of more than one module."""
    import grimp

    sys.path.insert(0, str(SRC.parents[1]))
    from tests.test_layers import _strongly_connected  # the same search the test runs

    graph = grimp.build_graph("neurorl_cli", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in graph.modules}
    return [sorted(c) for c in _strongly_connected(imports) if len(c) > 1]


def main() -> None:
    rows = {}
    for path in modules():
        tree = ast.parse(path.read_text())
        top = path.relative_to(SRC).parts[0]
        outside_families, outside_engines = top not in FAMILY_DIRS, top not in ENGINE_DIRS
        row = {"family_branches": branches(tree, FAMILY_NAMES) if outside_families else 0,
               "engine_branches": branches(tree, ENGINE_NAMES) if outside_engines else 0,
               "name_literals": literals(tree, FAMILY_NAMES | ENGINE_NAMES) if outside_families and outside_engines else 0}
        if any(row.values()):
            rows[str(path.relative_to(SRC))] = row
    total = Counter()
    for row in rows.values():
        total.update(row)
    found = cycles()
    lines = {name: sum(1 for _ in (SRC / name).open()) for name in ("catalog.py", "cli/watch_cmd.py") if (SRC / name).exists()}
    if "--json" in sys.argv:
        print(json.dumps({"modules": rows, "total": total, "cycles": found, "lines": lines}, indent=1))
        return
    for name, row in rows.items():
        print(f"{name:40} family branches {row['family_branches']:3}  engine branches {row['engine_branches']:3}  name literals {row['name_literals']:3}")
    print(f"{'total':40} family branches {total['family_branches']:3}  engine branches {total['engine_branches']:3}  name literals {total['name_literals']:3}")
    print(f"import cycles: {len(found)} ({', '.join(str(len(c)) + ' modules' for c in found) or 'none'})")
    for comp in found:
        print("  " + " ".join(m.removeprefix("neurorl_cli.") for m in comp))
    print("lines: " + ", ".join(f"{k} {v}" for k, v in lines.items()))


if __name__ == "__main__":
    main()
