"""How often the learning tests' criteria hold, measured over disjoint seed groups.

    python bench/learning_tests.py harlow --groups 10            # seeds 0-39, four per group
    python bench/learning_tests.py harlow --groups 10 --broken   # a learner that cannot learn
    python bench/learning_tests.py two-step --groups 5 [--broken]
    python bench/learning_tests.py firefly --groups 8 [--broken --groups 2]   # seeds 0-31

A learning test in tests/ trains one group (seeds 0-3) and asserts that the group learned
(tests/learning.py). This runs the same criterion on `--groups` groups of fresh seeds and prints
each seed's figures (firefly: the learner's best reward rate / the random policy's), their group
means, each group's verdict and the pass rate; `--broken` sets the learning rate
to 1e-12 (the schema refuses 0), so the same criterion must fail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import cli  # noqa: E402  (the same subprocess call the tests make)
from tests.learning import (FIREFLY_GROUP, GROUP, firefly_group, firefly_learned, harlow_group,  # noqa: E402
                            harlow_group_learned, two_step_group, two_step_learned)

# test -> (train a group, the group's verdict, the per-seed figures printed, seeds per group)
CRITERIA = {"harlow": (harlow_group, harlow_group_learned, ("trials_2_5",), GROUP),
            "two-step": (two_step_group, two_step_learned, ("model_based_index",), GROUP),
            "firefly": (firefly_group, firefly_learned, ("reward_rate", "random_rate"), FIREFLY_GROUP)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("test", choices=sorted(CRITERIA))
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--broken", action="store_true", help="learning rate 1e-12: the criterion must fail")
    parser.add_argument("--home", type=Path, help="keep each group's registry in HOME/group-N (default: scratch, deleted)")
    args = parser.parse_args()
    train_group, learned, figures, size = CRITERIA[args.test]
    extra = ("--set", "model.learning_rate=1e-12") if args.broken else ()
    passed = 0
    for g in range(args.groups):
        first = args.first_seed + g * size
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            home = args.home / f"group-{g}" if args.home else Path(tmp) / "home"
            rows = train_group(cli, f"{first}-{first + size - 1}", home, extra)
        ok = learned(rows)
        passed += ok
        seeds = "  ".join(f"{r['seed']}:" + "/".join(f"{r[f]:.4f}" for f in figures) for r in rows)
        means = "/".join(f"{np.mean([r[f] for r in rows]):.4f}" for f in figures)
        print(f"group {g} ({time.perf_counter() - started:.0f} s): {seeds}  mean {means}  -> {'pass' if ok else 'FAIL'}",
              flush=True)
    label = "broken learner" if args.broken else "learner"
    print(f"{args.test}, {label}: {passed}/{args.groups} groups of {size} seeds pass")


if __name__ == "__main__":
    main()
