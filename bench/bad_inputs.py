"""Bad inputs and faults a user meets, tried through the CLI: exit code, message, and whether
anything stored changed.

    python bench/bad_inputs.py [--markdown FILE]

It trains one cheap experiment (conditioning-variable x distributional-td, `--name cv`, run r1)
into a fresh registry, evaluates it, then runs each case against that registry and compares
every table's rows and the runs folder's files before and after. A case may prepare its own
damage (a corrupt checkpoint, a broken registry) in a copy. Expected: exit 2 and one line for
bad input, exit 1 for damaged data, no traceback, nothing stored changed unless the case is
work that succeeded in part.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import cli  # noqa: E402

CHEAP = ["conditioning-variable", "distributional-td", "--trials", "20", "--checkpoint-every", "10",
         "--set", "model.predictors=4"]
PDM = ["perceptual-decision-making", "recurrent-ppo", "--steps", "64", "--checkpoint-every", "64"]


def state(home: Path) -> str:
    """A digest of every stored row and every file under the home folder (backups aside)."""
    digest = hashlib.sha256()
    db = home / "registry.db"
    if db.exists():
        try:
            con = sqlite3.connect(db)
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
                for row in con.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                    digest.update(repr(row).encode())
            con.close()
        except sqlite3.DatabaseError:
            digest.update(db.read_bytes())
    for path in sorted(home.rglob("*")):
        if path.is_file() and "backups" not in path.parts and path.name != "registry.db" and not path.name.endswith((".lock", "-wal", "-shm")):
            digest.update(str(path.relative_to(home)).encode() + path.read_bytes())
    return digest.hexdigest()


def corrupt_checkpoint(home: Path) -> None:
    ck = sorted((home / "runs").glob("*/checkpoints/*"))[0]
    ck.write_bytes(ck.read_bytes()[:50])


def not_a_database(home: Path) -> None:
    (home / "registry.db").write_text("these are notes, not a registry\n" * 10)


def truncated(home: Path) -> None:
    data = (home / "registry.db").read_bytes()
    (home / "registry.db").write_bytes(data[: len(data) // 3])


def bad_user_task(home: Path) -> None:
    (home / "tasks").mkdir(exist_ok=True)
    (home / "tasks" / "mine.toml").write_text('name = "mine"\nfamily = [\n')


def bad_profile(home: Path) -> None:
    (home / "bad-profile.toml").write_text('partition = "gpu\\n#SBATCH --wrap=rm"\n')


CASES = [
    # group, command, damage to prepare in a copy
    ("references", ["eval", "1", "--best"], None),
    ("references", ["runs", "show", "r99"], None),
    ("references", ["runs", "show", "e1"], None),
    ("references", ["watch", "e1", "--gif", "w.gif"], None),
    ("references", ["report", "nothing-here"], None),
    ("references", ["export", "1", "--metrics", "m.csv"], None),
    ("references", ["train", "--resume", "r99"], None),
    ("references", ["train", "--resume", "r1"], None),
    ("references", ["eval", "abc", "--best"], None),
    ("names", ["train", *CHEAP, "--name", ""], None),
    ("names", ["train", *CHEAP, "--name", "   "], None),
    ("names", ["train", *CHEAP, "--name", "../../x"], None),
    ("names", ["train", *CHEAP, "--name", "1"], None),
    ("names", ["train", *CHEAP, "--name", "e7"], None),
    ("names", ["train", *CHEAP, "--name", "deadbeef"], None),
    ("settings", ["train", *PDM, "--set", "model.learning_rate=-1"], None),
    ("settings", ["train", *PDM, "--set", "model.n_steps=0"], None),
    ("settings", ["train", *PDM, "--set", "model.lstm_hidden_size=0"], None),
    ("settings", ["train", *PDM, "--set", "task.dt=0"], None),
    ("settings", ["train", *PDM, "--set", "model.gamma=nan"], None),
    ("settings", ["train", *CHEAP, "--set", "model.predictors=inf"], None),
    ("settings", ["train", *PDM, "--set", "model.no_such_setting=1"], None),
    ("settings", ["train", *PDM, "--set", "learning_rate"], None),
    ("settings", ["train", "firefly", "td3-modular", "--set", "model.tau=2"], None),
    ("settings", ["train", "harlow", "meta-a2c-lstm", "--set", "model.hidden_size=-3"], None),
    ("budgets", ["train", *CHEAP[:2], "--trials", "0"], None),
    ("budgets", ["train", *CHEAP[:2], "--steps", "100"], None),
    ("budgets", ["train", *CHEAP, "--seeds", "3-1"], None),
    ("budgets", ["train", *CHEAP, "--seeds", "-1"], None),
    ("budgets", ["train", *CHEAP, "--jobs", "0"], None),
    ("catalog", ["train", "perceptual-decison-making", "ppo"], None),
    ("catalog", ["train", "perceptual-decision-making", "no-such-model"], None),
    ("catalog", ["train", "harlow", "distributional-td"], None),
    ("catalog", ["train", "neurogym:NoSuchTask-v0", "ppo"], None),
    ("catalog", ["tasks"], bad_user_task),
    ("devices", ["train", *CHEAP, "--device", "tpu"], None),
    ("devices", ["eval", "cv", "--all-checkpoints", "--device", "cuda"], None),
    ("devices", ["train", *CHEAP, "--launcher", "pbs"], None),
    ("outputs", ["report", "cv", "--out", "{file}"], None),
    ("outputs", ["report", "cv", "--out", "{file}/sub"], None),
    ("outputs", ["export", "cv", "--trials", "{dir}"], None),
    ("outputs", ["export", "cv", "--trials", "/proc/neurorl/t.csv"], None),
    ("outputs", ["db", "backup", "{file}"], None),
    ("outputs", ["db", "backup", "/proc/neurorl.db"], None),
    ("outputs", ["watch", "r1", "--gif", "/proc/neurorl/w.gif"], None),
    ("outputs", ["watch", "r1", "--gif", "{dir}"], None),
    ("silence", ["export", "cv", "--trials", "t.csv", "--protocol", "nope"], None),
    ("silence", ["eval", "cv", "--all-checkpoints", "--protocol", "nope"], None),
    ("silence", ["eval", "cv"], None),
    ("damage", ["runs", "list"], not_a_database),
    ("damage", ["eval", "cv", "--best"], truncated),
    ("damage", ["eval", "cv", "--all-checkpoints", "--trials", "7", "--protocol", "default"], corrupt_checkpoint),
    ("safety", ["train", *CHEAP, "--launcher", "slurm", "--profile", "{home}/bad-profile.toml"], bad_profile),
    ("safety", ["train", *CHEAP, "--launcher", "slurm", "--partition", "gpu\n#SBATCH --wrap=x"], None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        cli("train", *CHEAP, "--name", "cv", home=base, check=True)
        cli("eval", "cv", "--all-checkpoints", "--trials", "5", home=base, check=True)
        (tmp / "a-file.txt").write_text("keep")
        rows = [f"CV = {' '.join(CHEAP)}; PDM = {' '.join(PDM)}", "",
                "| # | group | command | exit | message | stored changed |", "|---|---|---|---|---|---|"]
        for i, (group, command, damage) in enumerate(CASES, 1):
            home = tmp / f"case{i}"
            shutil.copytree(base, home)
            if damage is not None:
                damage(home)
            words = [w.format(file=tmp / "a-file.txt", dir=tmp, home=home) for w in command]
            before = state(home)
            proc = cli(*words, home=home)
            changed = state(home) != before
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            traceback = any("Traceback" in ln for ln in lines)
            message = lines[-1] if lines else (proc.stdout.strip().splitlines() or [""])[-1]
            shown = " ".join(w.replace("\n", "\\n") if w.strip() else repr(w) for w in command)
            shown = shown.replace(" ".join(CHEAP), "CV").replace(" ".join(PDM), "PDM")
            rows.append(f"| {i} | {group} | `neurorl {shown}` | {proc.returncode} | "
                        f"{'TRACEBACK ' if traceback else ''}{message[:160].replace('|', '/')} | {'yes' if changed else 'no'} |")
            print(rows[-1], flush=True)
        if args.markdown:
            args.markdown.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
