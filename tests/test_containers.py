"""Dockerfile and apptainer.def install exactly what pyproject pins, with the torch build as a build argument."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from neurorl_cli.launch.containers import mismatches, pins

from .conftest import REPO

CHECK = "python -m neurorl_cli.launch.containers check-pins pyproject.toml"
TORCH_PIN_SNIPPET = "d.startswith('torch==')"


def _files():
    return {"Dockerfile": (REPO / "Dockerfile").read_text(), "apptainer.def": (REPO / "apptainer.def").read_text()}


def test_pyproject_pins_every_dependency():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert len(pins(REPO / "pyproject.toml")) == len(deps)  # every one is name==version


@pytest.mark.parametrize("name", ["Dockerfile", "apptainer.def"])
def test_image_installs_the_project_pins_and_checks_them(name):
    text = _files()[name]
    pip_lines = [line for line in text.splitlines() if "pip install" in line]
    # torch at pyproject's own pin (read at build time), from the index the build argument picks
    torch_line = next(line for line in pip_lines if "TORCH_PIN" in line)
    assert "download.pytorch.org/whl/" in torch_line and ("${TORCH}" in torch_line or "{{ TORCH }}" in torch_line)
    assert TORCH_PIN_SNIPPET in text
    # the project itself (all its pins) and nothing else, unpinned, beside it
    others = [line for line in pip_lines if line is not torch_line]
    assert len(others) == 1 and re.search(r"pip install --no-cache-dir \.(\s|$)", others[0]), others
    assert CHECK in text  # the build fails when an installed version differs from a pin


def test_build_argument_selects_cpu_or_cuda_torch():
    files = _files()
    assert re.search(r"^ARG TORCH=cpu$", files["Dockerfile"], re.M)
    assert re.search(r"^\s*TORCH=cpu$", files["apptainer.def"], re.M)


def test_both_images_copy_the_same_project_files():
    files = _files()
    docker = set(re.findall(r"^COPY (\S+)", files["Dockerfile"], re.M)) | {"pyproject.toml", "README.md"}
    docker.discard("pyproject.toml")
    section = files["apptainer.def"].split("%files")[1].split("%post")[0]
    apptainer = {line.split()[0] for line in section.strip().splitlines()}
    assert {d.rstrip("/") for d in docker} | {"pyproject.toml"} == apptainer


def test_the_check_in_the_images_passes_here_and_catches_a_drift(tmp_path):
    # The same command the images run, against this environment (installed from the same pins).
    proc = subprocess.run([sys.executable, "-m", "neurorl_cli.launch.containers", "check-pins", "pyproject.toml"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    drifted = tmp_path / "pyproject.toml"
    drifted.write_text((REPO / "pyproject.toml").read_text().replace('"numpy==1.26.4"', '"numpy==1.26.3"'))
    assert mismatches(drifted) == ["numpy is 1.26.4, pyproject pins 1.26.3"]
