"""Build every scenario's .wad from its text sources: scenarios/<name>.*.txt -> scenarios/<name>.wad.

    python scenarios/build.py            rebuild all, write the ones that changed
    python scenarios/build.py --check    exit 1 if a committed .wad differs from its sources
    python scenarios/build.py --out DIR  write into DIR instead (the test's rebuild)

The builder itself is neurorl_cli.families.doom.wad; see its docstring for the source layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# In a checkout, build with the checkout's own builder, whatever neurorl is installed;
# in an installed copy (neurorl_cli/bundled/scenarios) there is no src/ and the package serves.
if (HERE.parent / "src" / "neurorl_cli").is_dir():
    sys.path.insert(0, str(HERE.parent / "src"))
from neurorl_cli.families.doom import wad  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios to build (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="directory for the .wad files")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    args = parser.parse_args(argv)

    found = wad.sources(HERE)
    unknown = sorted(set(args.names) - set(found))
    if unknown:
        parser.error(f"no sources for {', '.join(unknown)} (known: {', '.join(found)})")
    stale = []
    for name in args.names or found:
        data = wad.build(HERE, name)
        target = args.out / f"{name}.wad"
        if target.is_file() and target.read_bytes() == data:
            print(f"{target}: up to date")
        elif args.check:
            stale.append(name)
            print(f"{target}: differs from the build of {HERE / name}.*.txt", file=sys.stderr)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            print(f"{target}: written ({len(data)} bytes)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
