"""Cluster resources for `--launcher slurm|submitit-local`: options over a TOML profile.

A profile is `--profile FILE`, else `$NEURORL_HOME/slurm.toml` when it exists. Its keys sit
at the top level or under `[slurm]`:

    partition = "gpu"
    time = "12:00:00"        # or minutes; a job near its limit checkpoints and is requeued
    gpus = 1                 # per job (one run per job)
    cpus = 4
    mem = "16G"              # or GB as a number
    array_parallelism = 32   # jobs of one array running at once
    account = "lab"
    qos = "normal"
    container = "/shared/images/neurorl.sif"
    setup = ["module load apptainer"]
    sbatch = { constraint = "a100" }   # any other sbatch option
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from neurorl_cli.errors import UserError
from neurorl_cli.home import Home

PROFILE_NAME = "slurm.toml"
DEFAULT_TIME_MIN = 240


# Every value below ends up in the sbatch script, one `#SBATCH --key=value` or setup line each:
# a newline (or any control character) in one would start a line of its own, run by the job's
# shell. So they are checked when the profile and options are read, before anything is stored.
def one_line(value: str) -> str:
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"{value!r} holds a control character ({bad!r}); give it on one line")
    return value


def slurm_name(value: str) -> str:
    """A partition, account or QOS name (a partition may be a comma-separated list of them)."""
    one_line(value)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*", value):
        raise ValueError(f"{value!r} is not a Slurm name: use letters, digits and . _ + - (commas between names)")
    return value


def sbatch_option(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
        raise ValueError(f"{key!r} is not an sbatch option name: use its long name without the leading dashes, e.g. constraint")
    return key


def sbatch_value(value: str | int | bool) -> str | int | bool:
    if value is False:  # would be written as `--option=False`
        raise ValueError("false: leave the option out instead")
    return one_line(value) if isinstance(value, str) else value


Line = Annotated[str, AfterValidator(one_line)]
SlurmName = Annotated[str, AfterValidator(slurm_name)]
SbatchOption = Annotated[str, AfterValidator(sbatch_option)]
SbatchValue = Annotated[str | int | bool, AfterValidator(sbatch_value)]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: SlurmName | None = None
    time: int | None = Field(None, ge=1, description="minutes")
    gpus: int | None = Field(None, ge=0)
    cpus: int | None = Field(None, ge=1)
    mem: float | None = Field(None, gt=0, allow_inf_nan=False, description="GB")
    array_parallelism: int | None = Field(None, ge=1)
    account: SlurmName | None = None
    qos: SlurmName | None = None
    container: Line | None = None
    setup: list[Line] = Field(default_factory=list)  # one shell line each
    sbatch: dict[SbatchOption, SbatchValue] = Field(default_factory=dict)

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value):
        return parse_time(value) if isinstance(value, str) else value

    @field_validator("mem", mode="before")
    @classmethod
    def _mem(cls, value):
        return parse_mem(value) if isinstance(value, str) else value

    @property
    def time_min(self) -> int:
        return self.time or DEFAULT_TIME_MIN


def parse_time(text: str) -> int:
    """Slurm's time formats (MM, HH:MM:SS, D-HH[:MM[:SS]]) as whole minutes, rounded up."""
    text = text.strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ValueError(f"time {text!r}: use minutes, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    return max(1, math.ceil(seconds / 60))


def parse_mem(text: str) -> float:
    """`16G`, `512M`, `1T` or a bare number of GB, as GB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text.upper())
    if not match:
        raise ValueError(f"mem {text!r}: use e.g. 16G, 512M or a number of GB")
    value, unit = float(match.group(1)), match.group(2) or "G"
    return value * {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[unit]


def load_profile(path: Path) -> Resources:
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"--profile {path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"profile {path} is not valid TOML: {exc}") from exc
    if isinstance(data.get("slurm"), dict):
        data = data["slurm"]
    try:
        return Resources.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(_printable(p) for p in first["loc"] if p != "[key]") or "(top level)"
        raise UserError(f"profile {path}, field '{field}': {_message(first)}") from exc


def resources(home: Home, profile: Path | None, **options) -> Resources:
    """The profile (given, or the home's slurm.toml), with command-line options on top."""
    try:  # job logs go under the runs folder, named in the sbatch script too
        one_line(str(home.runs))
    except ValueError as exc:
        raise UserError(f"runs folder (NEURORL_RUNS or NEURORL_HOME): {exc}") from exc
    base = Resources()
    if profile is not None:
        base = load_profile(profile)
    elif (home.root / PROFILE_NAME).is_file():
        base = load_profile(home.root / PROFILE_NAME)
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return Resources.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]).replace("_", "-")
        raise UserError(f"--{field}: {_message(first)}") from exc


def _printable(part) -> str:
    """A field name as one printable line (a bad sbatch option name is itself part of the path)."""
    text = str(part)
    return text if text.isprintable() else repr(text)


def _message(error: dict) -> str:
    return error["msg"].removeprefix("Value error, ")
