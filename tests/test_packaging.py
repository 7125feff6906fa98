"""A plain `pip install` ships the catalogs and the migrations inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from .conftest import REPO


def test_wheel_carries_catalogs_and_migrations(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("neurorl_cli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "neurorl_cli/bundled/tasks/perceptual-decision-making.toml" in names
    assert "neurorl_cli/bundled/models/recurrent-ppo.toml" in names
    assert "neurorl_cli/bundled/migrations/env.py" in names
    assert any(n.startswith("neurorl_cli/bundled/migrations/versions/0001_") for n in names)
    assert "neurorl_cli/cli/app.py" in names
    assert {"neurorl_cli/nets/meta_lstm.py", "neurorl_cli/bundled/tasks/harlow.toml"} <= names
    assert {"neurorl_cli/ui/static/app.js", "neurorl_cli/ui/static/style.css"} <= names  # `neurorl ui`'s page
    # every module of the source tree, families and engines included (the package list is explicit)
    source = {str(p.relative_to(REPO / "src")) for p in (REPO / "src" / "neurorl_cli").rglob("*.py")}
    assert not source - names, f"modules left out of the wheel: {sorted(source - names)}"
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[gymnasium.envs]" in text and "neurorl = neurorl_cli.plugins:register_gym_ids" in text


def test_importing_gymnasium_registers_our_ids_without_torch():
    code = ("import sys, gymnasium\n"
            "assert 'neurorl/Harlow-v0' in gymnasium.registry and 'neurorl/TwoStep-v0' in gymnasium.registry\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_listing_does_not_import_torch():
    code = "import sys; from neurorl_cli.cli.app import main; sys.argv=['neurorl','runs','list','--json']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
