"""Command-line conventions: --version, shell completion, examples and value names in every
--help, and tables whose names can be copied whole."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from neurorl_cli import catalog
from neurorl_cli.cli import app as cli_app

from .conftest import REPO, cli

# Python types where a value's meaning belongs, and Typer's braces around a required argument.
TYPE_NAMES = re.compile(r"<(bool|str|int|float|path|file|list\[\w+\])>|\{[a-z_]+\}")


def _root():
    if not cli_app.app.registered_commands:  # main() registers the commands; here the app is used directly
        cli_app._register()
    return get_command(cli_app.app)


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = [path for path, _ in _commands(_root())]


def _examples(command) -> list[str]:
    return [line.strip() for line in (command.epilog or "").splitlines() if line.strip().startswith("neurorl ")]


def _parse(words: list[str]):
    """The command an example names, with its arguments parsed and converted by the real parser."""
    root = _root()
    assert words[0] == "neurorl"
    command, ctx = root, root.make_context("neurorl", words[1:])
    while hasattr(command, "commands"):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)
    return command, ctx


def test_version_is_printed_without_loading_the_libraries():
    probe = ("import atexit, sys; "
             "atexit.register(lambda: print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules), file=sys.stderr)); "
             "from neurorl_cli.cli.app import main; main(['--version'])")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"neurorl {version('neurorl-cli')}\n"
    assert proc.stderr.strip() == "[]"
    assert cli("--version").stdout == proc.stdout


def _completed(words: str, **env: str) -> list[str]:
    """What TAB offers after `words` (the last one is being typed), as bash asks for it."""
    env = {**os.environ, **env, "_NEURORL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (not words.endswith(" ")))}
    proc = subprocess.run([sys.executable, "-m", "neurorl_cli"], capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout.split()


def test_shell_completion_is_offered_and_completes_commands():
    root_help = cli("--help", check=True).stdout
    assert "--install-completion" in root_help and "--show-completion" in root_help
    script = cli("--show-completion", "bash", check=True).stdout
    assert "_neurorl_completion" in script
    # The shell named wins over the one detected (the suite may run under any shell, or none).
    assert "complete --command neurorl" in cli("--show-completion", "fish", check=True).stdout
    wrong = cli("--show-completion", "tcsh")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "neurorl --show-completion bash" in wrong.stderr
    assert _completed("neurorl runs l") == ["list"]


def test_tab_completes_catalog_names_the_users_own_spec_files_and_statuses(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "harlow-long.toml").write_text("")  # names come from file names: unread, unvalidated
    home = {"NEURORL_HOME": str(tmp_path)}
    assert _completed("neurorl train har", **home) == ["harlow", "harlow-long"]
    assert _completed("neurorl train harlow meta-", **home) == ["meta-a2c-lstm"]
    assert _completed("neurorl train firefly td3-", **home) == ["td3-holistic", "td3-modular"]
    assert _completed("neurorl train tasks/two", **home) == ["tasks/two-step.toml"]
    assert _completed("neurorl report --task conditioning-f", **home) == ["conditioning-fixed"]
    assert _completed("neurorl runs list --model ekf", **home) == ["ekf-td3"]
    assert _completed("neurorl runs list --status c", **home) == ["completed", "crashed", "cancelled"]
    # Names a family makes. Bash splits its words at the colon, and readline then replaces only
    # what follows it, so bash is offered that part.
    assert _completed("neurorl train neurogym : GoNo", **home) == ["GoNogo-v0"]
    assert _completed("neurorl train neurogym :", **home)[:2] == ["AntiReach-v0", "Bandit-v0"]
    assert _completed("neurorl train neurogym : GoNogo-v0 ek", **home) == ["ekf-td3"]
    assert _completed("neurorl runs list --task = conditioning-f", **home) == ["conditioning-fixed"]
    assert _completed("neurorl train '' meta-", **home) == ["meta-a2c-lstm"]  # an empty word is no break
    assert _completed("neurorl train nothing-like-it", **home) == []


def test_bare_completion_options_detect_the_shell_or_fall_back_to_dollar_shell(monkeypatch):
    import shellingham

    from neurorl_cli.cli import completion
    from neurorl_cli.errors import UserError

    assert completion.bare_to_detect(["--show-completion"]) == ["--show-completion", ""]
    assert completion.bare_to_detect(["--install-completion", "--help"]) == ["--install-completion", "", "--help"]
    assert completion.bare_to_detect(["--show-completion", "zsh"]) == ["--show-completion", "zsh"]

    def no_shell_among_the_parents():  # as under cron or a detached job
        raise shellingham.ShellDetectionFailure()

    monkeypatch.setattr(shellingham, "detect_shell", no_shell_among_the_parents)
    monkeypatch.setenv("SHELL", "/usr/bin/zsh")
    assert completion._shell("") == "zsh"
    monkeypatch.delenv("SHELL")
    with pytest.raises(UserError, match="neurorl --show-completion bash"):
        completion._shell("")
    with pytest.raises(UserError, match="neurorl --install-completion bash"):  # the hint repeats the option typed
        completion._shell("", "--install-completion")


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "neurorl")
def test_help_has_whole_examples_and_names_values(path):
    result = CliRunner().invoke(cli_app.app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Examples" in text
    assert not TYPE_NAMES.search(text), TYPE_NAMES.search(text).group(0)
    command = dict(_commands(_root()))[path]
    examples = _examples(command)
    assert examples
    shown = {line.strip() for line in text.splitlines()}
    for example in examples:
        assert example in shown, f"{example!r} is not shown whole at 80 columns"
    assert any(example.split()[1:1 + len(path)] == list(path) for example in examples)


def test_every_example_parses_and_its_names_exist():
    parsed = [_parse(shlex.split(example)) for _, command in _commands(_root()) for example in _examples(command)]
    # Runs and experiments are named as DESIGN.md says (r3, e12) or by a name a train example gives.
    names = {ctx.params["name"] for named, ctx in parsed if named.name == "train" and ctx.params["name"]}
    assert names
    for named, ctx in parsed:
        params = ctx.params
        for key in ("ref", "refs", "resume"):
            value = params.get(key)
            for ref in value if isinstance(value, list | tuple) else [value] if value else []:
                assert ref in names or re.fullmatch(r"[er][0-9]+", ref), (named.name, ref)
        if named.name == "train" and params["task"]:
            configs = catalog.resolve(catalog.load_task(params["task"]), catalog.load_model(params["model"]),
                                      params["set_"], params["steps"], params["checkpoint_every"], params["trials"])
            catalog.parse_seeds(params["seeds"])
            for config in configs:
                catalog.check_pair(config)
        if params.get("task") and named.name in ("report", "list"):
            assert params["task"] in catalog.task_names(), params["task"]
        if params.get("model") and named.name == "list":
            assert params["model"] in catalog.model_names(), params["model"]
    # The read-only examples also run as they are written.
    for example in ("neurorl runs list", "neurorl runs matrix", "neurorl db status"):
        assert cli(*shlex.split(example)[1:]).returncode == 0, example


def test_runs_list_shows_a_long_name_whole_when_piped():
    name = "a-very-long-experiment-name-that-a-table-must-show-whole-when-piped-ok"
    assert len(name) == 70
    cli("train", "conditioning-variable", "distributional-td", "--trials", "20", "--checkpoint-every", "20",
        "--set", "model.predictors=4", "--name", name, check=True)
    env = {**os.environ, "COLUMNS": "80"}
    listing = subprocess.run([sys.executable, "-m", "neurorl_cli", "runs", "list"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert name in listing.stdout
    assert "…" not in listing.stdout
    rows = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert [r["experiment_name"] for r in rows] == [name]
