"""Doom WAD files built from text sources, byte for byte reproducibly.

neurorl's ViZDoom scenarios (`scenarios/` at the top of the repository) are committed twice:
as text sources and as the `<name>.wad` built from them, side by side, so a reviewer reads the
text and ViZDoom reads the WAD. This module is the builder; `scenarios/build.py` is its
command line. Nothing here reads another project's binary: the map is UDMF text, the actors
are DECORATE text, and the sprites are ASCII art turned into Doom pictures.

A scenario NAME has these sources (all but the text map are optional):

    NAME.textmap.txt   the UDMF map (namespace "zdoom"), lump TEXTMAP of map MAP01
    NAME.decorate.txt  DECORATE actors (ViZDoom's ZDoom engine compiles them at load)
    NAME.mapinfo.txt   MAPINFO (sky, level name, ...)
    NAME.sprites.txt   sprites as ASCII art, see `parse_sprites`

and becomes the lumps MAP01 (marker), TEXTMAP, ENDMAP, DECORATE, MAPINFO, S_START, the sprites
in file order, S_END. No node lumps: ZDoom builds nodes itself for a UDMF map that has none.
(Flat files rather than a folder per scenario: a folder inside the bundled package would look
to setuptools like an unlisted Python package.)

A WAD is a 12-byte header ("PWAD", lump count, directory offset; little-endian int32), the
lumps' data, then the directory: one 16-byte entry per lump (offset, size, name as 8 bytes
padded with NULs). Nothing time- or platform-dependent goes in, and text sources are read with
their line endings normalised to LF, so a checkout with CRLF endings builds the same bytes.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

MAP_NAME = "MAP01"
# source kind -> lump name, in the order the lumps are written after the map
TEXT_LUMPS = (("decorate", "DECORATE"), ("mapinfo", "MAPINFO"))
LUMP_NAME = re.compile(r"^[A-Z0-9_\[\]\\^-]{1,8}$")


def pack(lumps: list[tuple[str, bytes]]) -> bytes:
    """A PWAD holding `lumps` (name, data) in order."""
    body = bytearray()
    directory = bytearray()
    for name, data in lumps:
        if not LUMP_NAME.match(name):
            raise ValueError(f"lump name {name!r} is not 1-8 upper-case characters")
        directory += struct.pack("<ii8s", 12 + len(body), len(data), name.encode("ascii"))
        body += data
    return struct.pack("<4sii", b"PWAD", len(lumps), 12 + len(body)) + bytes(body) + bytes(directory)


def unpack(data: bytes) -> list[tuple[str, bytes]]:
    """The lumps (name, data) of a WAD, in directory order."""
    magic, count, offset = struct.unpack_from("<4sii", data, 0)
    if magic not in (b"PWAD", b"IWAD"):
        raise ValueError("not a WAD file")
    lumps = []
    for i in range(count):
        start, size, name = struct.unpack_from("<ii8s", data, offset + 16 * i)
        lumps.append((name.rstrip(b"\0").decode("ascii"), bytes(data[start:start + size])))
    return lumps


def picture(rows: list[str], colours: dict[str, int], left: int, top: int) -> bytes:
    """A Doom picture ("patch") from ASCII art: one character per pixel, '.' transparent,
    any other character looked up in `colours` (palette index 0-255). `left`/`top` are the
    picture's offsets: the pixel that sits on the actor's position (for a sprite, `top` is
    about the height so the sprite stands on the floor).

    Format: width, height, left, top (int16), then one uint32 offset per column to that
    column's posts; a post is (row start, length, pad byte, pixels, pad byte), 0xFF ends a column."""
    height = len(rows)
    width = len(rows[0]) if rows else 0
    if not 0 < height < 255 or not 0 < width < 1024 or any(len(r) != width for r in rows):
        raise ValueError("sprite rows must be non-empty, equally long, and fewer than 255")
    columns = []
    for x in range(width):
        col = bytearray()
        y = 0
        while y < height:
            if rows[y][x] == ".":
                y += 1
                continue
            start = y
            while y < height and rows[y][x] != ".":
                y += 1
            pixels = bytes(colours[rows[k][x]] for k in range(start, y))
            col += bytes([start, len(pixels), 0]) + pixels + b"\0"
        columns.append(bytes(col) + b"\xff")
    header = struct.pack("<hhhh", width, height, left, top)
    offsets, data, at = [], bytearray(), len(header) + 4 * width
    for col in columns:
        offsets.append(at + len(data))
        data += col
    return header + struct.pack(f"<{width}I", *offsets) + bytes(data)


def parse_sprites(text: str, where: str = "sprites.txt") -> list[tuple[str, bytes]]:
    """Sprites from ASCII art. The text is a sequence of

        shape NAME LEFT TOP          ASCII art rows follow, then a line `end`
        sprite LUMP SHAPE C=INDEX ...   a sprite lump (e.g. APLRA0) drawing SHAPE with
                                        character C in palette colour INDEX

    so one shape serves several colourings. `#` starts a comment line. Errors name the line."""
    shapes: dict[str, tuple[list[str], int, int]] = {}
    lumps: list[tuple[str, bytes]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        words = line.split()
        try:
            if words[0] == "shape" and len(words) == 4:
                name, left, top = words[1], int(words[2]), int(words[3])
                rows = []
                while i < len(lines) and lines[i].strip() != "end":
                    if lines[i].strip():
                        rows.append(lines[i].strip())
                    i += 1
                if i == len(lines):
                    raise ValueError(f"shape {name} has no `end`")
                i += 1
                shapes[name] = (rows, left, top)
            elif words[0] == "sprite" and len(words) >= 3:
                lump, shape = words[1], words[2]
                if shape not in shapes:
                    raise ValueError(f"unknown shape {shape!r}")
                colours = {}
                for pair in words[3:]:
                    char, _, index = pair.partition("=")
                    if len(char) != 1 or char == "." or not 0 <= int(index) <= 255:
                        raise ValueError(f"bad colour {pair!r} (want C=INDEX, INDEX 0-255)")
                    colours[char] = int(index)
                rows, left, top = shapes[shape]
                missing = sorted({c for r in rows for c in r} - set(colours) - {"."})
                if missing:
                    raise ValueError(f"sprite {lump} gives no colour for {''.join(missing)!r}")
                lumps.append((lump, picture(rows, colours, left, top)))
            else:
                raise ValueError(f"expected `shape NAME LEFT TOP` or `sprite LUMP SHAPE C=INDEX...`, got {line!r}")
        except ValueError as e:
            raise ValueError(f"{where}:{i}: {e}") from None
    return lumps


def _text(path: Path) -> bytes:
    data = path.read_bytes().replace(b"\r\n", b"\n")
    data.decode("ascii")  # ZDoom's lump parsers expect plain ASCII; fail here, not in the engine
    return data


def scenario_lumps(root: Path, name: str) -> list[tuple[str, bytes]]:
    """The lumps of scenario `name` from its text sources in the directory `root`."""
    root = Path(root)
    textmap = root / f"{name}.textmap.txt"
    if not textmap.is_file():
        raise ValueError(f"{textmap} does not exist")
    lumps = [(MAP_NAME, b""), ("TEXTMAP", _text(textmap)), ("ENDMAP", b"")]
    for kind, lump in TEXT_LUMPS:
        if (root / f"{name}.{kind}.txt").is_file():
            lumps.append((lump, _text(root / f"{name}.{kind}.txt")))
    sprites = root / f"{name}.sprites.txt"
    if sprites.is_file():
        lumps += [("S_START", b""), *parse_sprites(_text(sprites).decode("ascii"), str(sprites)), ("S_END", b"")]
    return lumps


def build(root: Path, name: str) -> bytes:
    """The WAD of scenario `name` (deterministic: same sources, same bytes)."""
    return pack(scenario_lumps(root, name))


def sources(root: Path) -> list[str]:
    """The names of the scenarios in `root`, i.e. of every NAME.textmap.txt there."""
    return sorted(p.name.removesuffix(".textmap.txt") for p in Path(root).glob("*.textmap.txt"))
