"""How often the learning tests' criteria hold, measured over disjoint seed groups.

    python bench/learning_tests.py harlow --groups 10            # seeds 0-39, four per group
    python bench/learning_tests.py harlow --groups 10 --broken   # a learner that cannot learn
    python bench/learning_tests.py two-step --groups 5 [--broken]

A learning test in tests/ trains one group (seeds 0-3) and asserts that most of it learned
(tests/learning.py). This runs the same criterion on `--groups` groups of fresh seeds and prints
each seed's figure, each group's verdict and the pass rate; `--broken` sets the learning rate
to 1e-12 (the schema refuses 0), so the same criterion must fail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import cli  # noqa: E402  (the same subprocess call the tests make)
from tests.learning import GROUP, harlow_group, harlow_group_learned, two_step_group, two_step_learned  # noqa: E402

# test -> (train a group, the group's verdict, the per-seed figure printed)
CRITERIA = {"harlow": (harlow_group, harlow_group_learned, "trials_2_5"),
            "two-step": (two_step_group, two_step_learned, "model_based_index")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("test", choices=sorted(CRITERIA))
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--broken", action="store_true", help="learning rate 1e-12: the criterion must fail")
    args = parser.parse_args()
    train_group, learned, figure = CRITERIA[args.test]
    extra = ("--set", "model.learning_rate=1e-12") if args.broken else ()
    passed = 0
    for g in range(args.groups):
        first = args.first_seed + g * GROUP
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            rows = train_group(cli, f"{first}-{first + GROUP - 1}", Path(tmp) / "home", extra)
        ok = learned(rows)
        passed += ok
        seeds = "  ".join(f"{r['seed']}:{r[figure]:.3f}" for r in rows)
        print(f"group {g} ({time.perf_counter() - started:.0f} s): {seeds}  -> {'pass' if ok else 'FAIL'}", flush=True)
    label = "broken learner" if args.broken else "learner"
    print(f"{args.test}, {label}: {passed}/{args.groups} groups of {GROUP} seeds pass")


if __name__ == "__main__":
    main()
