"""`neurorl ui`: the web view over a real registry.

Two registries: one written here through the real path (catalog configs, `training.plan`, run
logs written by RunLog and ingested), with metric values chosen so that the seeds' mean and
interval can be computed by hand; and the registry written before the plug-in layout
(tests/fixtures), whose runs of four families carry real checkpoints and evaluations.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from neurorl_cli import api, catalog, training
from neurorl_cli.analysis.stats import bootstrap_ci
from neurorl_cli.home import Home, find_home
from neurorl_cli.registry import queries
from neurorl_cli.registry.db import open_registry
from neurorl_cli.registry.ingest import ingest
from neurorl_cli.runlog import RunLog
from neurorl_cli.ui.app import create_app, plotly_js
from neurorl_cli.ui.curves import bootstrap_rows
from neurorl_cli.ui.downsample import lttb_indices

FIXTURE = Path(__file__).parent / "fixtures" / "registry-before-plugins.tar.gz"
TOKEN = "test-token"
KEY = "perf/trial_performance"
LONG = 5000  # points of a long curve

# seed -> {step: value} of the first experiment (two seeds of a sweep of two learning rates)
SEED0 = {100: 0.1, 150: 0.2, 200: 0.4, 300: 0.7}
SEED1 = {100: 0.3, 200: 0.6, 300: 0.9, 400: 1.0}


def _configs(*sets: str) -> list[dict]:
    task, model = catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo")
    return catalog.resolve(task, model, list(sets), 1000, 500, None)


def _log(run, values: dict[int, float], finish: bool, extra: dict | None = None) -> RunLog:
    log = RunLog(Path(run.run_dir), heartbeat_every=0)
    log.started("cpu", {})
    for step, value in values.items():
        log.metrics(step, {KEY: value})
    for step, value in (extra or {}).items():
        log.metrics(step, {"train/long": value})
    if finish:
        log.finish("completed")
    return log


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A registry of three experiments: a sweep of two learning rates (e1, e2; two seeds each,
    seed 1 of e1 still running) and a third (e3, named live) whose one seed is running."""
    root = tmp_path_factory.mktemp("ui")
    saved = os.environ.get("NEURORL_HOME")
    os.environ["NEURORL_HOME"] = str(root / "home")
    try:
        home = find_home()
        engine = open_registry(home)
        sweep = training.plan(engine, home, _configs("model.learning_rate=0.001,0.0003"), [0, 1], None, ["sweep"], False, "local")
        live = training.plan(engine, home, _configs("model.n_steps=64"), [0], "live", [], False, "local")
        runs = {(r.experiment_id, r.seed): r for r in sweep.to_train + live.to_train}
        e1, e2 = (e.id for e in sweep.experiments)
        long_steps = np.arange(1, LONG + 1) * 10
        walk = np.cumsum(np.random.default_rng(0).normal(size=LONG))
        walk[1234] = walk.max() + 50  # a spike a downsampled curve must keep
        logs = [
            _log(runs[(e1, 0)], SEED0, True, extra=dict(zip(long_steps.tolist(), walk.tolist()))),
            _log(runs[(e1, 1)], SEED1, False),
            _log(runs[(e2, 0)], {100: 0.5, 200: 0.5}, True),
            _log(runs[(e2, 1)], {100: 0.7, 200: 0.9}, True),
        ]
        live_log = _log(runs[(live.experiments[0].id, 0)], {64: 0.25}, False)
        ingest(engine)
        registry = api.Registry(engine)
        yield {"home": home.root, "registry": registry, "e1": f"e{e1}", "e2": f"e{e2}", "e3": f"e{live.experiments[0].id}",
               "live_log": live_log, "walk": walk, "long_steps": long_steps}
        for log in logs + [live_log]:
            log.close()
    finally:
        if saved is None:
            os.environ.pop("NEURORL_HOME", None)
        else:
            os.environ["NEURORL_HOME"] = saved


@pytest.fixture(scope="module")
def client(made, tmp_path_factory):
    app = create_app(made["registry"], TOKEN, refresh=lambda: ingest(made["registry"].engine), refresh_every=0,
                     folder=tmp_path_factory.mktemp("ui-figures"))
    with TestClient(app, headers={"Authorization": f"token {TOKEN}"}) as c:
        yield c


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    """The registry written before the plug-in layout, with a client over it."""
    where = tmp_path_factory.mktemp("before")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(where, filter="data")
    home = where / "home"
    registry = api.Registry(open_registry(Home(home, home / "runs", "test")))
    app = create_app(registry, TOKEN, refresh=lambda: ingest(registry.engine), refresh_every=0,
                     folder=tmp_path_factory.mktemp("old-figures"))
    with TestClient(app, headers={"Authorization": f"token {TOKEN}"}) as c:
        yield {"client": c, "registry": registry, "home": where / "home"}


# ----------------------------------------------------------------------------- access


def test_the_token_is_required_and_trades_for_a_cookie(made, tmp_path):
    app = create_app(made["registry"], TOKEN, cookie="neurorl-ui-1234", folder=tmp_path)
    with TestClient(app) as anonymous:
        for path in ("/", "/api/experiments", "/e/e1", "/static/plotly.min.js"):
            assert anonymous.get(path).status_code == 403, path
        assert anonymous.get("/?token=wrong").status_code == 403
        assert anonymous.get("/api/experiments", headers={"Authorization": "token wrong"}).status_code == 403
    with TestClient(app) as browser:
        first = browser.get("/runs?status=running&token=" + TOKEN, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/runs?status=running"  # the token leaves the URL
        assert "httponly" in first.headers["set-cookie"].lower()
        assert browser.get("/runs?status=running&token=" + TOKEN).status_code == 200
        assert browser.get("/api/experiments").status_code == 200  # by the cookie alone
    with TestClient(app) as script:
        assert script.get("/api/experiments", headers={"Authorization": f"token {TOKEN}"}).status_code == 200


def test_only_reading_is_allowed(client, made):
    before = client.get("/api/runs").json()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/", "/api/experiments", f"/api/experiment/{made['e1']}", "/api/runs"):
            assert client.request(method, path).status_code == 405, (method, path)
    assert client.get("/api/runs").json() == before


# ----------------------------------------------------------------------------- lists


def test_experiments_list_filters_and_sorts(client, made):
    rows = client.get("/api/experiments").json()
    assert [r["ref"] for r in rows] == [made["e1"], made["e2"], made["e3"]]
    e1 = rows[0]
    assert (e1["task"], e1["model"], e1["seeds"], e1["completed"], e1["running"]) == ("perceptual-decision-making", "recurrent-ppo", 2, 1, 1)
    assert e1["tags"] == ["sweep"] and e1["overrides"] == {"model.learning_rate": 0.001}
    assert [r["ref"] for r in client.get("/api/experiments?tag=sweep").json()] == [made["e1"], made["e2"]]
    assert [r["ref"] for r in client.get("/api/experiments?status=running").json()] == [made["e1"], made["e3"]]
    assert [r["ref"] for r in client.get("/api/experiments?q=0.0003").json()] == [made["e2"]]
    assert [r["ref"] for r in client.get("/api/experiments?q=live").json()] == [made["e3"]]
    assert [r["ref"] for r in client.get("/api/experiments?sort=name").json()][0] == made["e3"]  # unnamed last
    assert [r["ref"] for r in client.get("/api/experiments?sort=id&desc=1").json()] == [made["e3"], made["e2"], made["e1"]]
    bad = client.get("/api/experiments?sort=colour")
    assert bad.status_code == 400 and "sort=colour: one of" in bad.json()["error"]


def test_runs_list_filters_and_sorts(client, made):
    rows = client.get("/api/runs?status=running&sort=id&desc=1").json()
    assert [(r["experiment_ref"], r["seed"], r["status"]) for r in rows] == [(made["e3"], 0, "running"), (made["e1"], 1, "running")]
    assert {r["status"] for r in client.get(f"/api/runs?experiment={made['e2']}").json()} == {"completed"}
    assert client.get("/api/runs?status=sleeping").status_code == 400


def test_matrix_counts_seeds_per_task_and_model(client, made):
    m = client.get("/api/matrix").json()
    assert m["tasks"] == ["perceptual-decision-making"] and m["models"] == ["recurrent-ppo"]
    (cell,) = m["cells"]
    assert (cell["seeds"], cell["completed"], cell["running"], cell["failed"]) == (5, 3, 2, 0)
    assert cell["experiment_refs"] == [made["e1"], made["e2"], made["e3"]]


# ----------------------------------------------------------------------------- curves


def test_experiment_curves_give_seeds_mean_and_interval_on_a_common_grid(client, made):
    info = client.get(f"/api/experiment/{made['e1']}").json()
    assert info["live"] and KEY in info["keys"] and info["default_keys"] == [KEY]
    data = client.get(f"/api/experiment/{made['e1']}/curves?key={KEY}").json()
    seeds = {s["label"].split(" (")[0]: s for s in data["seeds"]}
    assert seeds["seed 0"]["x"] == [100, 150, 200, 300] and seeds["seed 1"]["y"] == [0.3, 0.6, 0.9, 1.0]
    s = data["summary"]
    assert s["x"] == [100, 150, 200, 300, 400]
    # By hand: at 150 seed 1 lies halfway between 0.3 and 0.6; past 300 only seed 1 has logged.
    # With two seeds, the bootstrap's 2.5% and 97.5% resampled means are the two values
    # themselves (each is drawn twice with probability 1/4); with one, all three collapse.
    pairs = [(0.1, 0.3), (0.2, 0.45), (0.4, 0.6), (0.7, 0.9)]
    assert s["mean"] == pytest.approx([(a + b) / 2 for a, b in pairs] + [1.0])
    assert s["low"] == pytest.approx([min(p) for p in pairs] + [1.0])
    assert s["high"] == pytest.approx([max(p) for p in pairs] + [1.0])
    assert s["n"] == [2, 2, 2, 2, 1]


def test_interval_matches_the_reports_bootstrap():
    values = np.random.default_rng(3).normal(size=(40, 7))
    values[5, 2] = np.nan  # a seed that has not reached this step
    mean, low, high = bootstrap_rows(values)
    for row in (0, 5, 39):
        assert (mean[row], low[row], high[row]) == pytest.approx(bootstrap_ci(values[row]))


def test_long_curves_are_downsampled_keeping_ends_and_peaks(client, made):
    data = client.get(f"/api/experiment/{made['e1']}/curves?key=train/long&points=200").json()
    (seed,) = data["seeds"]
    steps, walk = made["long_steps"], made["walk"]
    assert seed["points"] == LONG and len(seed["x"]) == 200
    assert seed["x"][0] == steps[0] and seed["x"][-1] == steps[-1]
    assert seed["y"][0] == pytest.approx(walk[0]) and seed["y"][-1] == pytest.approx(walk[-1])
    assert max(seed["y"]) == pytest.approx(walk.max())  # the spike
    assert len(data["summary"]["x"]) == 200
    assert client.get(f"/api/experiment/{made['e1']}/curves?key=train/long&points=2").status_code == 400
    keep = lttb_indices(np.arange(10.0), np.arange(10.0), 10)
    assert keep.tolist() == list(range(10))  # short curves pass whole


def test_compare_groups_a_sweep_by_the_settings_that_differ(client, made):
    data = client.get("/api/compare?task=perceptual-decision-making&model=recurrent-ppo").json()
    assert data["differing"] == ["model.hyper.learning_rate", "model.hyper.n_steps"]  # the cell's three experiments
    assert [g["experiments"] for g in data["groups"]] == [[made["e1"]], [made["e2"]], [made["e3"]]]
    by_rate = client.get("/api/compare?task=perceptual-decision-making&model=recurrent-ppo&group_by=model.hyper.learning_rate").json()
    assert {g["label"]: g["experiments"] for g in by_rate["groups"]} == {
        "model.hyper.learning_rate=0.001": [made["e1"]], "model.hyper.learning_rate=0.0003": [made["e2"], made["e3"]]}
    sweep = client.get(f"/api/compare?experiments={made['e1']},{made['e2']}").json()
    assert sweep["differing"] == ["model.hyper.learning_rate"]
    by_label = {g["label"]: g for g in sweep["groups"]}
    e2 = by_label["model.hyper.learning_rate=0.0003"]
    assert e2["experiments"] == [made["e2"]] and e2["summary"]["mean"] == pytest.approx([0.6, 0.7])
    pooled = client.get(f"/api/compare?experiments={made['e1']},{made['e2']}&group_by=").json()
    (group,) = pooled["groups"]
    assert group["seeds"] == 4 and group["summary"]["n"][0] == 4
    assert group["summary"]["mean"][0] == pytest.approx((0.1 + 0.3 + 0.5 + 0.7) / 4)
    bad = client.get(f"/api/compare?experiments={made['e1']},{made['e2']}&group_by=model.hyper.gamma")
    assert bad.status_code == 400 and "not a setting that differs" in bad.json()["error"]


def test_a_running_run_updates_live(client, made):
    ref = made["e3"]
    before = client.get(f"/api/experiment/{ref}").json()
    curve = client.get(f"/api/experiment/{ref}/curves?key={KEY}").json()
    assert before["live"] and curve["seeds"][0]["x"] == [64]
    log = made["live_log"]
    log.heartbeat()
    log.metrics(128, {KEY: 0.5})
    log.metrics(192, {KEY: 0.75})
    after = client.get(f"/api/experiment/{ref}").json()
    assert after["version"] != before["version"]
    curve = client.get(f"/api/experiment/{ref}/curves?key={KEY}").json()
    assert curve["seeds"][0]["x"] == [64, 128, 192] and curve["seeds"][0]["y"] == [0.25, 0.5, 0.75]
    log.finish("completed")
    assert not client.get(f"/api/experiment/{ref}").json()["live"]


# ----------------------------------------------------------------------------- evaluations, analyses, GIFs


def test_checkpoint_evaluations_per_protocol(old):
    data = old["client"].get("/api/experiment/pdm/evaluations").json()
    (protocol,) = data["protocols"]
    assert protocol["protocol"] == "default" and protocol["select"] == "fraction_correct"
    assert protocol["seeds"][0]["x"] == [64, 128]
    assert protocol["best"] == [{"seed": 0, "run": "r1", "step": 128, "score": 0.0}]
    missing = old["client"].get("/api/experiment/harlow/evaluations").json()
    assert missing["protocols"] == [] and missing["command"] == "neurorl eval e3 --all-checkpoints"


def test_family_analyses_come_as_data_with_the_command_for_what_is_missing(old):
    c = old["client"]
    data = c.get("/api/experiment/pdm/analyses").json()
    assert data["family"] == "neurogym"
    items = {i["name"]: i for s in data["sections"] for i in s["items"] if i["kind"] == "figure"}
    psychometric = items["psychometric_default"]
    assert {"signed_coh", "p_choose_2"} <= set(psychometric["data"]["columns"]) and psychometric["data"]["rows"]
    assert c.get(psychometric["image"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    # Trial panels play a checkpoint: the family's notice, and the command that computes them.
    notices = [i["text"] for s in data["sections"] for i in s["items"] if i["kind"] == "notice"]
    assert any(t.startswith("No trial panels") for t in notices)
    assert data["command"] == "neurorl report e1"
    tables = [i for s in data["sections"] for i in s["items"] if i["kind"] == "table"]
    assert tables and "score" in tables[0]["columns"]
    harlow = c.get("/api/experiment/harlow/analyses").json()
    assert harlow["evaluate"] == "neurorl eval e3 --all-checkpoints"
    assert c.get("/figures/e1/..%2Fregistry.db").status_code == 404


def test_watch_gif_is_served_when_stored_else_its_command(old):
    c = old["client"]
    data = c.get("/api/experiment/pdm/watch").json()
    assert data["gif"] is None
    assert data["command"] == "neurorl watch r1 --checkpoint best --protocol default --gif watch-r1.gif"
    gif = old["home"] / "watch-r1.gif"
    gif.write_bytes(b"GIF89a" + bytes(20))
    with old["registry"].session() as session:
        queries.add_artifact(session, "gif", gif, data["command"], experiment_id=1, run_id=1)
        session.commit()
    data = c.get("/api/experiment/pdm/watch").json()
    assert data["gif"]["of_best"] and data["command"] is None
    assert c.get(f"/stored/{data['gif']['artifact']}").content == gif.read_bytes()


# ----------------------------------------------------------------------------- pages


def test_pages_load_their_scripts_from_this_server_only(client, made):
    for path in ("/", "/runs", "/matrix", "/compare", f"/e/{made['e1']}"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page.text)
        assert "/static/plotly.min.js" in sources and "/static/app.js" in sources
        assert not [s for s in sources if not s.startswith("/")], sources
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.content == plotly_js().read_bytes()
    app_js = client.get("/static/app.js").text
    assert "Plotly.react" in app_js and "uirevision" in app_js
    assert not re.search(r"https?://", app_js)
    assert client.get("/static/../app.py").status_code == 404


def test_the_command_serves_with_a_token_and_refuses_a_taken_port(made):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "NEURORL_HOME": str(made["home"])}
    server = subprocess.Popen([sys.executable, "-m", "neurorl_cli", "ui", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, server.stderr.read()
            url = next(iter(re.findall(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)), None)
        assert url and f":{port}/" in url
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/experiments", timeout=10)
        assert refused.value.code == 403
        token = url.split("token=")[1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/experiments", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200 and b"perceptual-decision-making" in answer.read()
        taken = subprocess.run([sys.executable, "-m", "neurorl_cli", "ui", "--port", str(port)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2
        assert f"--port {port}: already in use" in taken.stderr and len(taken.stderr.strip().splitlines()) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_zoomed_chart_gets_the_detail_of_its_range(client, made):
    steps = made["long_steps"]
    data = client.get(f"/api/experiment/{made['e1']}/curves?key=train/long&points=100&x0=20000&x1=21000").json()
    (seed,) = data["seeds"]
    # The 101 steps from 20,000 to 21,000 and one beyond each edge (103 points), downsampled to 100.
    inside = (steps >= 19990) & (steps <= 21010)
    assert seed["x"][0] == 19990 and seed["x"][-1] == 21010 and len(seed["x"]) == 100
    assert set(seed["x"]) <= set(steps[inside].tolist())
    assert client.get(f"/api/experiment/{made['e1']}/curves?key=train/long&x0=left").status_code == 400
