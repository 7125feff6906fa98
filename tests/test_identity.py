"""Stored experiments keep their identity: every case of tests/identity_cases.py resolves to the
config and hash the code before the plug-in layout gave (tests/fixtures/identity.json)."""

from __future__ import annotations

import json

from tests.identity_cases import FIXTURE, cases


def test_every_stored_case_keeps_its_config_and_hash(tmp_path):
    frozen = json.loads(FIXTURE.read_text())
    now = cases(tmp_path)
    missing = sorted(set(frozen) - set(now))
    assert not missing, f"cases that no longer resolve or pair: {missing}"
    for case, before in frozen.items():
        assert now[case]["config"] == before["config"], case
        assert now[case]["hash"] == before["hash"], case
