"""Daily use through the CLI: one naming scheme for runs and experiments, names that cannot be
mistaken for anything else, and bad input refused in one line with nothing stored."""

from __future__ import annotations

import json
import shlex
import sqlite3

import pytest

from .conftest import cli

CHEAP = ["conditioning-variable", "distributional-td", "--trials", "20", "--checkpoint-every", "20",
         "--set", "model.predictors=4"]


def _rows(home, table: str) -> int:
    path = home / "registry.db"
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def cheap(neurorl_home):
    """Two experiments (so e2 and r2 name different things), one and two runs."""
    cli("train", *CHEAP, "--name", "first", check=True)
    trained = cli("train", *CHEAP, "--seeds", "0-1", "--set", "model.gamma=[0.5,0.9]", check=True)
    return neurorl_home, trained.stdout


def test_runs_and_experiments_are_named_one_way_everywhere(cheap):
    home, printed = cheap
    assert "experiment e2" in printed and "run r2 seed 0" in printed and "run r3 seed 1" in printed
    listing = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert [(r["ref"], r["experiment_ref"]) for r in listing] == [("r1", "e1"), ("r2", "e2"), ("r3", "e2")]
    table = cli("runs", "list", check=True).stdout
    assert "r3" in table and "e2" in table

    # A bare number could be either: refused, saying how to write each.
    for command in (["eval", "2", "--best"], ["runs", "show", "2"], ["report", "2"], ["export", "2", "--metrics", "m.csv"]):
        proc = cli(*command)
        assert proc.returncode == 2, command
        assert "e2" in proc.stderr and "r2" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    # What `runs show` prints as the next step works when pasted: it evaluates that run only.
    shown = cli("runs", "show", "r2", check=True).stdout
    hint = next(line for line in shown.splitlines() if "neurorl eval" in line).split(": ", 1)[1]
    words = shlex.split(hint)
    assert words[:3] == ["neurorl", "eval", "r2"]
    cli(*words[1:], "--trials", "5", check=True)
    con = sqlite3.connect(home / "registry.db")
    evaluated = {r for (r,) in con.execute("SELECT DISTINCT c.run_id FROM evaluation e JOIN checkpoint c ON c.id = e.checkpoint_id")}
    con.close()
    assert evaluated == {2}

    # e2 is the experiment (both seeds); r1 and the name name run 1 and experiment 1.
    best = json.loads(cli("eval", "e2", "--best", "--json", check=True).stdout)
    assert {row["run"] for row in best} == {2}
    assert json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)["experiment_name"] == "first"
    wrong_kind = cli("runs", "show", "e1")
    assert wrong_kind.returncode == 2 and "is an experiment" in wrong_kind.stderr


@pytest.mark.parametrize("name", ["", "   ", "a/b", "1", "e5", "r12", "abcdef12", "-x", "x" * 101, "tab\there"])
def test_names_that_could_be_misread_are_refused(name):
    from neurorl_cli.errors import UserError
    from neurorl_cli.registry.queries import check_name

    with pytest.raises(UserError, match="--name"):
        check_name(name)
    assert check_name("pdm-lstm.64_v2") == "pdm-lstm.64_v2"


@pytest.mark.parametrize("name", ["../../x", "3"])
def test_a_refused_name_stores_nothing(neurorl_home, name):
    proc = cli("train", *CHEAP, "--name", name)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--name" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _rows(neurorl_home, "experiment") == 0 and _rows(neurorl_home, "run") == 0


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A registry with one cheap experiment (e1, run r1), its checkpoints evaluated."""
    home = tmp_path_factory.mktemp("stored") / "home"
    cli("train", *CHEAP, "--name", "cv", home=home, check=True)
    cli("eval", "cv", "--all-checkpoints", "--trials", "5", home=home, check=True)
    return home


def _one_line_exit_2(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def test_output_paths_are_checked_before_any_work(stored, tmp_path):
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("keep me")
    before = (stored / "registry.db").read_bytes()
    cases = [
        (["report", "cv", "--out", str(a_file)], "existing file"),
        (["report", "cv", "--out", str(a_file / "sub")], "is a file, not a folder"),
        (["export", "cv", "--trials", str(tmp_path)], "is a folder"),
        (["export", "cv", "--metrics", str(a_file / "m.csv")], "is a file, not a folder"),
        (["export", "cv", "--trials", "/proc/neurorl-test/t.csv"], "cannot write"),
        (["db", "backup", str(a_file)], "exists already"),
        (["db", "backup", "/proc/neurorl-test.db"], "cannot write"),
        (["watch", "r1", "--gif", "/proc/neurorl-test/w.gif"], "cannot write"),
        (["watch", "r1", "--gif", str(tmp_path)], "is a folder"),
    ]
    for args, message in cases:
        assert message in _one_line_exit_2(cli(*args, home=stored)), args
    assert a_file.read_text() == "keep me"
    assert (stored / "registry.db").read_bytes() == before


def test_evaluation_says_what_it_found(stored, tmp_path):
    home = tmp_path / "home"
    import shutil

    shutil.copytree(stored, home)
    # What was evaluated is shown, not only stored.
    again = cli("eval", "cv", "--all-checkpoints", "--trials", "5", "--protocol", "default", home=home, check=True)
    assert "best" in again.stdout and "abs_td_error_mean" in again.stdout
    assert "GPU" in _one_line_exit_2(cli("eval", "cv", "--all-checkpoints", "--device", "cuda", home=home))
    assert "--protocol nope" in _one_line_exit_2(cli("export", "cv", "--trials", str(tmp_path / "t.csv"), "--protocol", "nope", home=home))
    assert not (tmp_path / "t.csv").exists()
    assert "backwards" in _one_line_exit_2(cli("train", *CHEAP, "--seeds", "3-1", home=home))


def test_one_broken_user_spec_does_not_hide_the_catalog(neurorl_home):
    (neurorl_home / "tasks").mkdir(parents=True)
    (neurorl_home / "tasks" / "mine.toml").write_text('name = "mine"\nfamily = [\n')
    proc = cli("tasks")
    assert proc.returncode == 1 and "mine.toml" in proc.stderr
    assert "perceptual-decision-making" in proc.stdout and "firefly navigation" in proc.stdout


def test_the_budget_rounding_is_said_at_train_time(neurorl_home):
    proc = cli("train", "two-step", "meta-a2c-lstm", "--trials", "1000", "--checkpoint-every", "1000",
               "--set", "model.episodes_per_update=8", check=True)
    assert "whole updates of 800 trials: the budget of 1,000 trials trains 1,600" in proc.stderr
    assert "1600/1600" in proc.stderr  # the progress bar counts to what is trained, not to the budget


def test_a_damaged_registry_is_reported_and_left_as_it_is(neurorl_home):
    cli("runs", "list", check=True)  # creates the registry
    registry = neurorl_home / "registry.db"
    whole = registry.read_bytes()
    for damaged, why in ((whole[: len(whole) // 2], "truncated"), (b"my notes\n" * 20, "not an SQLite database")):
        registry.write_bytes(damaged)
        proc = cli("runs", "list")
        assert proc.returncode == 1 and why in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert registry.read_bytes() == damaged


def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path):
    import errno

    from neurorl_cli.atomic import CannotWrite, write_with

    def full(tmp):
        tmp.write_bytes(b"part of a report")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CannotWrite, match=r"cannot write .*out\.csv: No space left on device"):
        write_with(tmp_path / "out.csv", full)
    assert list(tmp_path.iterdir()) == []
