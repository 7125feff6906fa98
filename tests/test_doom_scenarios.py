"""neurorl's own ViZDoom scenarios (scenarios/): the committed .wad is exactly what its text
sources build, and the apple-gathering arena behaves as the reference describes, checked in
the real engine, headless."""

from __future__ import annotations

import contextlib
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import vizdoom as vzd

from neurorl_cli.families.doom import wad

from .conftest import REPO

SCENARIOS = REPO / "scenarios"
APPLES = SCENARIOS / "retinal_apple_gathering.cfg"
NOOP, FORWARD = [0, 0, 0, 0], [0, 0, 1, 0]  # TURN_LEFT TURN_RIGHT MOVE_FORWARD MOVE_BACKWARD


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """ViZDoom writes _vizdoom.ini and _vizdoom/ into the working directory: not the repo's."""
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def apple_game(seed: int, cfg: Path = APPLES):
    """The scenario as its .cfg defines it, plus what only the tests read: every actor in the
    level (objects info) and the player's position and angle."""
    game = vzd.DoomGame()
    assert game.load_config(str(cfg)), f"ViZDoom rejected {cfg}"
    game.set_window_visible(False)
    game.set_objects_info_enabled(True)
    for var in (vzd.GameVariable.POSITION_X, vzd.GameVariable.POSITION_Y, vzd.GameVariable.ANGLE):
        game.add_available_game_variable(var)
    game.set_seed(seed)
    game.init()
    try:
        yield game
    finally:
        game.close()


def census(game) -> Counter:
    return Counter(o.name for o in game.get_state().objects)


def near_player(game, radius: float = 500.0) -> Counter:
    """The census within `radius` map units of the player."""
    x, y = (game.get_game_variable(v) for v in (vzd.GameVariable.POSITION_X, vzd.GameVariable.POSITION_Y))
    return Counter(o.name for o in game.get_state().objects
                   if o.name != "DoomPlayer" and abs(o.position_x - x) < radius and abs(o.position_y - y) < radius)


def health(game) -> float:
    return game.get_game_variable(vzd.GameVariable.HEALTH)


# --- the build -------------------------------------------------------------------------


def test_committed_wad_is_what_its_sources_build(tmp_path):
    out = subprocess.run([sys.executable, str(SCENARIOS / "build.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert wad.sources(SCENARIOS) == ["retinal_apple_gathering"]
    for name in wad.sources(SCENARIOS):
        rebuilt = (tmp_path / f"{name}.wad").read_bytes()
        assert rebuilt == (SCENARIOS / f"{name}.wad").read_bytes(), f"{name}.wad is stale: run scenarios/build.py"
        assert wad.build(SCENARIOS, name) == rebuilt  # and a second build gives the same bytes
    # --check reports a .wad that differs from its sources
    (tmp_path / "retinal_apple_gathering.wad").write_bytes(b"PWAD")
    check = subprocess.run([sys.executable, str(SCENARIOS / "build.py"), "--check", "--out", str(tmp_path)],
                           capture_output=True, text=True)
    assert check.returncode == 1 and "differs" in check.stderr


def test_build_ignores_line_endings(tmp_path):
    for src in SCENARIOS.glob("retinal_apple_gathering.*.txt"):
        (tmp_path / src.name).write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    assert wad.build(tmp_path, "retinal_apple_gathering") == (SCENARIOS / "retinal_apple_gathering.wad").read_bytes()


def _freedoom_names() -> tuple[set[str], set[str], bytes]:
    """Flat names, wall texture names and the palette of the IWAD ViZDoom plays with."""
    lumps = wad.unpack((Path(vzd.__file__).parent / "freedoom2.wad").read_bytes())
    names = [n for n, _ in lumps]
    flats = set(names[names.index("F_START"):names.index("F_END")])
    textures = set()
    for name, data in lumps:
        if name in ("TEXTURE1", "TEXTURE2"):
            (count,) = struct.unpack_from("<i", data)
            for off in struct.unpack_from(f"<{count}i", data, 4):
                textures.add(data[off:off + 8].rstrip(b"\0").decode())
    return flats, textures, dict(lumps)["PLAYPAL"][:768]


def _decode_picture(data: bytes) -> list[list[int | None]]:
    """Pixels of a Doom picture (None = transparent), read independently of the writer."""
    width, height, _, _ = struct.unpack_from("<hhhh", data)
    grid: list[list[int | None]] = [[None] * width for _ in range(height)]
    for x, off in enumerate(struct.unpack_from(f"<{width}I", data, 8)):
        while data[off] != 0xFF:
            top, length = data[off], data[off + 1]
            for k in range(length):
                grid[top + k][x] = data[off + 3 + k]
            off += length + 4
    return grid


def test_wad_holds_the_map_actors_and_sprites_with_freedoom_names():
    lumps = wad.unpack((SCENARIOS / "retinal_apple_gathering.wad").read_bytes())
    assert [n for n, _ in lumps] == ["MAP01", "TEXTMAP", "ENDMAP", "DECORATE", "MAPINFO",
                                     "S_START", "APLRA0", "APLBA0", "GRASA0", "S_END"]
    byname = dict(lumps)
    textmap = byname["TEXTMAP"].decode()
    assert 'namespace = "zdoom";' in textmap and "special = 83;" in textmap
    flats, textures, palette = _freedoom_names()
    for field, value in re.findall(r'(texture\w+) = "([^"]+)"', textmap):
        assert value in (flats if field in ("texturefloor", "textureceiling") else textures), value
    assert re.search(r'sky1 = "(\w+)"', byname["MAPINFO"].decode()).group(1) in textures
    # the apples are red and blue in the palette ViZDoom renders with: the body colour (most
    # frequent pixel) of APLRA0 is mostly red, of APLBA0 mostly blue
    for lump, channel in (("APLRA0", 0), ("APLBA0", 2)):
        pixels = [p for row in _decode_picture(byname[lump]) for p in row if p is not None]
        body = Counter(pixels).most_common(1)[0][0]
        rgb = palette[3 * body:3 * body + 3]
        assert rgb[channel] > 150 and all(rgb[c] < 60 for c in range(3) if c != channel), (lump, tuple(rgb))


def test_picture_round_trip_and_sprite_errors_name_the_line():
    rows = [".a.", "aba", "..b"]
    grid = _decode_picture(wad.picture(rows, {"a": 7, "b": 200}, 1, 3))
    assert grid == [[None, 7, None], [7, 200, 7], [None, None, 200]]
    with pytest.raises(ValueError, match=r"x\.txt:6: sprite S gives no colour for 'b'"):
        wad.parse_sprites("# c\nshape s 1 1\nab\nend\n\nsprite S s a=1\n", "x.txt")
    with pytest.raises(ValueError, match="x.txt:1: expected"):
        wad.parse_sprites("sprit S s\n", "x.txt")


# --- the arena in ViZDoom ----------------------------------------------------------------


def test_map_loads_from_the_cfg_wherever_the_process_runs():
    # the cwd is a temporary folder (the autouse fixture): the .wad path in the .cfg is resolved
    # against the .cfg's folder
    with apple_game(seed=1) as game:
        assert Path(game.get_doom_scenario_path()) == SCENARIOS / "retinal_apple_gathering.wad"
        assert game.get_episode_timeout() == 2100
        assert game.get_living_reward() == pytest.approx(0.01)
        assert game.get_available_buttons() == [vzd.Button.TURN_LEFT, vzd.Button.TURN_RIGHT,
                                                vzd.Button.MOVE_FORWARD, vzd.Button.MOVE_BACKWARD]
        assert game.get_available_game_variables()[0] == vzd.GameVariable.HEALTH
        game.new_episode()
        state = game.get_state()
        assert state.screen_buffer.shape == (120, 160, 3)
        seen = census(game)
        # the initial 30 red / 2 blue plus the first red + blue of the cycle; up to 100 tufts
        # (a tuft that would overlap another or the player is not placed)
        assert (seen["RedApple"], seen["BlueApple"]) == (31, 3)
        assert 90 <= seen["GrassTuft"] <= 100
        assert all(abs(o.position_x) <= 1000 and abs(o.position_y) <= 1000
                   for o in state.objects if o.name in ("RedApple", "BlueApple", "GrassTuft"))


def test_apples_spawn_two_red_per_blue():
    with apple_game(seed=3) as game:
        game.new_episode()
        game.send_game_command("god")  # standing still must not end the episode early
        start = census(game)
        while game.get_episode_time() < 2100:
            game.make_action(NOOP)
        end = census(game)
        red, blue = end["RedApple"] - start["RedApple"] + 1, end["BlueApple"] - start["BlueApple"] + 1
        # 2100 tics / 50 tics per cycle = 42 cycles of (red + blue, 25 tics, red, 25 tics);
        # +1 each: the census at tic 1 already held the first cycle's red and blue
        assert (red, blue) == (84, 42)
        positions = [(o.position_x, o.position_y) for o in game.get_state().objects if o.name.endswith("Apple")]
        xs = sorted(x for x, _ in positions)
        assert xs[0] >= -1000 and xs[-1] <= 1000 and xs[len(xs) // 4] < -250 and xs[3 * len(xs) // 4] > 250


def _walk_into(game, item: str) -> tuple[float, list[float]]:
    """Summon `item` in front of the player (out in the empty part of the arena, so nothing
    else is touched) and walk forward until it is picked up. Returns the health change in
    the tic of the pickup and every other health change on the way."""
    game.send_game_command(f"summon {item}")
    game.make_action(NOOP)
    assert near_player(game) == Counter({item: 1})
    others = []
    for _ in range(30):
        before = health(game)
        game.make_action(FORWARD)
        delta = health(game) - before
        if not near_player(game):
            return delta, others
        if delta:
            others.append(delta)
    raise AssertionError(f"{item} was not picked up")


def test_red_apple_heals_20_and_blue_apple_poisons_30():
    with apple_game(seed=5) as game:
        game.new_episode()
        game.send_game_command("warp 4000 4000")  # far from everything spawned in +-1000
        game.make_action(NOOP)
        assert census(game)["RedApple"] > 30  # the arena's apples are still there, far away
        blue, others_blue = _walk_into(game, "BlueApple")
        assert health(game) <= 80  # so a red apple's +20 is not cut by the 100 cap
        red, others_red = _walk_into(game, "RedApple")
        assert (blue, red) == (-30, 20)
        assert set(others_blue + others_red) <= {-8}  # only the floor's drain besides


def test_floor_drains_8_health_every_32_tics():
    with apple_game(seed=2) as game:
        game.new_episode()
        trace = []
        for _ in range(32 * 10):
            game.make_action(NOOP)  # standing still picks nothing up
            trace.append((game.get_episode_time(), health(game)))
        drops = [(t, h0 - h1) for (_, h0), (t, h1) in zip(trace, trace[1:]) if h1 != h0]
        assert [d for _, d in drops] == [8] * len(drops) and len(drops) >= 9
        assert {b[0] - a[0] for a, b in zip(drops, drops[1:])} == {32}  # 8 * 35 / 32 = 8.75 HP/s


def test_episode_lasts_2100_tics():
    with apple_game(seed=4) as game:
        game.new_episode()
        game.send_game_command("god")  # without it the floor kills a still player by about tic 385
        game.make_action(NOOP, 2099)
        assert not game.is_episode_finished()
        game.make_action(NOOP)
        assert game.is_episode_finished() and not game.is_player_dead()


def _spawn_spots() -> set[tuple[float, float]]:
    text = (SCENARIOS / "retinal_apple_gathering.textmap.txt").read_text()
    things = re.findall(r"thing \{([^}]*)\}", text)
    return {(float(re.search(r"x = ([-\d.]+);", t).group(1)), float(re.search(r"y = ([-\d.]+);", t).group(1)))
            for t in things if "type = 31020;" in t}


def _views(game, seed: int, episodes: int) -> list[tuple[float, float, float]]:
    """(x, y, angle) of the player at the first state of `episodes` episodes after seeding."""
    game.set_seed(seed)  # takes effect at the next new_episode
    views = []
    for _ in range(episodes):
        game.new_episode()
        views.append(tuple(game.get_state().game_variables[1:]))
    return views


def test_spawn_spot_and_angle_vary_with_the_seed_and_repeat_with_it():
    spots = _spawn_spots()
    assert len(spots) == 12
    with apple_game(seed=0) as game:
        views = [_views(game, seed, 1)[0] for seed in range(8)]
        assert all((x, y) in spots for x, y, _ in views)
        assert len({(x, y) for x, y, _ in views}) >= 4
        assert len({round(a, 3) for _, _, a in views}) == 8
        # the same seed gives the same episodes; consecutive episodes differ
        again = _views(game, 5, 3)
        assert again == _views(game, 5, 3) and again[0] == views[5] and len(set(again)) == 3
    firsts = []
    for _ in range(2):  # two fresh games seeded alike (before init) start alike
        with apple_game(seed=5) as fresh:
            fresh.new_episode()
            firsts.append(tuple(fresh.get_state().game_variables[1:]))
    assert firsts[0] == firsts[1]


def test_wheel_ships_scenarios_that_load_from_the_installed_copy(tmp_path):
    # built from a copy: setuptools reuses <source>/build/, which may hold files since deleted
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "_vizdoom*", ".pytest_cache", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("neurorl_cli-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    bundled = tmp_path / "site" / "neurorl_cli" / "bundled" / "scenarios"
    assert sorted(p.name for p in bundled.iterdir() if p.suffix != ".py") == sorted(
        p.name for p in SCENARIOS.iterdir() if p.suffix in (".cfg", ".wad", ".txt"))
    with apple_game(seed=1, cfg=bundled / "retinal_apple_gathering.cfg") as game:
        assert Path(game.get_doom_scenario_path()) == bundled / "retinal_apple_gathering.wad"
        game.new_episode()
        assert census(game)["RedApple"] == 31
