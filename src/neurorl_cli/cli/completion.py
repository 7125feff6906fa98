"""`--show-completion [SHELL]` and `--install-completion [SHELL]`: Typer's completion scripts for
the shell the user names, or, when none is named, for the shell neurorl runs under.

Typer's own pair only detects the shell (shellingham walks the parent processes) and ignores a
name given after it: from bash, `--show-completion fish` printed bash's script, and with no shell
among the ancestors (a job started by cron, an IDE or a detached pipeline) both failed with
"Shell  not supported.". Here a name wins, detection falls back to $SHELL, and what is left
unknown is one line that names the fix.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import shellingham
import typer.completion
from typer._click.shell_completion import add_completion_class, split_arg_string
from typer._completion_classes import BashComplete  # private, as the click Typer vendors: typer is pinned

from neurorl_cli.errors import UserError

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
# Typer's completion classes, which its scripts call back; Typer registers them only for its own
# options (add_completion=True).
typer.completion.completion_init()


class _Bash(BashComplete):
    """Bash's completion, with the words bash split at ':' and '=' (its COMP_WORDBREAKS) joined
    again: `neurogym:GoNo` arrives as `neurogym`, `:`, `GoNo`, and Typer's class completed `GoNo`
    as a model. Readline replaces only the word bash split off last (`GoNo`), so an offer is cut
    to what replaces it (`GoNogo-v0`), as bash-completion's __ltrim_colon_completions does."""

    BREAKS = ":="

    def _words(self) -> tuple[list[str], str, str]:
        """The arguments before the word being typed, that word joined again, and the end of it
        that readline replaces (the part bash split off last)."""
        words = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        joined: list[str] = []
        for word in words[:cword + 1]:
            if joined and word and (not word.strip(self.BREAKS) or joined[-1].endswith(tuple(self.BREAKS))):
                joined[-1] += word
            else:
                joined.append(word)
        if cword >= len(words):  # after a space: a new, empty word
            return joined[1:], "", ""
        return joined[1:-1], joined[-1], words[cword] if words[cword].strip(self.BREAKS) else ""

    def get_completion_args(self) -> tuple[list[str], str]:
        args, incomplete, _ = self._words()
        return args, incomplete

    def complete(self) -> str:
        args, incomplete, replaced = self._words()
        kept = incomplete[:len(incomplete) - len(replaced)]  # typed before the last split
        offers = [item.value for item in self.get_completions(args, incomplete)]
        return "\n".join(o[len(kept):] if kept and o.startswith(kept) else o for o in offers)


add_completion_class(_Bash, "bash")


def _shell(named: str, option: str = "--show-completion") -> str:
    """The shell named, else the one detected; `option` (the one typed) goes into the hint."""
    if named:
        if named not in SHELLS:
            raise UserError(f"neurorl completes in {', '.join(SHELLS)}, not {named!r}; "
                            f"name one: neurorl {option} bash")
        return named
    try:
        detected = shellingham.detect_shell()[0]
    except shellingham.ShellDetectionFailure:
        detected = Path(os.environ.get("SHELL", "")).name
    if detected not in SHELLS:
        seen = f"the shell here is {detected!r}" if detected else "no shell runs neurorl here"
        raise UserError(f"{seen}; name one of {', '.join(SHELLS)}: neurorl {option} bash")
    return detected


def show(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        typer.completion.show_callback(ctx, param, _shell(value, param.opts[0]))  # prints the script and exits


def install(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        typer.completion.install_callback(ctx, param, _shell(value, param.opts[0]))  # writes the rc line and exits


def bare_to_detect(args: list[str]) -> list[str]:
    """`--show-completion` with no SHELL after it means the shell running neurorl: "" here. (Typer's
    click takes no option whose value may be left out.)"""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in ("--show-completion", "--install-completion") and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append("")
    return out


# -- what TAB offers for a value. A completer never fails: an error would print into the user's
# shell line, so one that cannot read the catalog offers nothing.


def _offer(names: list[str], incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete)]


def _spec_files(incomplete: str) -> list[str]:
    """Folders and .toml files under what is typed, where it looks like a path (TASK and MODEL
    also take a spec file)."""
    if "/" not in incomplete and not incomplete.startswith("."):
        return []
    return sorted(p + "/" if os.path.isdir(p) else p for p in glob.glob(incomplete + "*")
                  if os.path.isdir(p) or p.endswith(".toml"))


def tasks(incomplete: str) -> list[str]:
    """Catalog task names (the shipped ones and the user's), read from file names: TAB stays under
    a second, where validating the catalog would import torch. After a family's prefix, the names
    it makes (neurogym:<Id>: that imports NeuroGym, so only once a ':' is typed)."""
    try:
        from neurorl_cli import catalog, plugins
        from neurorl_cli.home import find_home

        names = catalog.task_names(find_home())
        if ":" in incomplete:
            names += [n for family in plugins.families().values() for n in family.generated_names()]
        return _offer(names, incomplete) + _spec_files(incomplete)
    except Exception:  # noqa: BLE001 - see above
        return []


def models(incomplete: str) -> list[str]:
    """Catalog model names (the shipped ones and the user's)."""
    try:
        from neurorl_cli import catalog
        from neurorl_cli.home import find_home

        return _offer(catalog.model_names(find_home()), incomplete) + _spec_files(incomplete)
    except Exception:  # noqa: BLE001 - see above
        return []


def statuses(incomplete: str) -> list[str]:
    from neurorl_cli.registry.models import RUN_STATUSES

    return _offer(list(RUN_STATUSES), incomplete)
