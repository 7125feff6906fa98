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


def test_listing_does_not_import_torch():
    code = "import sys; from neurorl_cli.cli.app import main; sys.argv=['neurorl','runs','list','--json']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
