"""Container images: check that an environment holds exactly what pyproject pins.

The Dockerfile and apptainer.def run this at the end of their build, and the test suite
runs it against the development environment, so all three agree with pyproject.toml:

    python -m neurorl_cli.launch.containers check-pins pyproject.toml
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def pins(pyproject: Path) -> dict[str, str]:
    """name -> version of every `name==version` dependency; other specifiers are refused."""
    deps = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;,]+)\s*", dep)
        if not match:
            raise ValueError(f"dependency '{dep}' is not pinned with ==")
        out[_norm(match.group(1))] = match.group(2)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def mismatches(pyproject: Path) -> list[str]:
    """What the running environment has that differs from the pins (empty when it agrees)."""
    from importlib.metadata import PackageNotFoundError, version

    problems = []
    for name, wanted in pins(pyproject).items():
        try:
            have = version(name)
        except PackageNotFoundError:
            problems.append(f"{name}=={wanted} is not installed")
            continue
        # A local build label (torch 2.13.0+cpu, +cu128) is the build argument's choice, not another version.
        if have.split("+")[0] != wanted:
            problems.append(f"{name} is {have}, pyproject pins {wanted}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "check-pins":
        print("usage: python -m neurorl_cli.launch.containers check-pins PYPROJECT", file=sys.stderr)
        return 2
    problems = mismatches(Path(argv[1]))
    for line in problems:
        print(f"pin mismatch: {line}", file=sys.stderr)
    if not problems:
        print(f"all {len(pins(Path(argv[1])))} pinned packages installed at their pinned versions")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
