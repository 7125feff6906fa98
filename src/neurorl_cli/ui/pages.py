"""The HTML shell of each page; static/app.js fills it from the JSON routes.

Scripts come from this server only (plotly.js from the plotly package's own file), so a page
works on a cluster with no network.
"""

from __future__ import annotations

from html import escape

TITLES = {"experiments": "Experiments", "runs": "Runs", "matrix": "Task x model", "compare": "Compare",
          "experiment": "Experiment"}
NAV = [("/", "experiments"), ("/runs", "runs"), ("/matrix", "matrix"), ("/compare", "compare")]


def shell(kind: str, ref: str | None = None) -> str:
    title = f"{ref} · neurorl" if ref else f"{TITLES[kind]} · neurorl"
    nav = " ".join(f'<a href="{href}"{" class=here" if name == kind else ""}>{TITLES[name]}</a>' for href, name in NAV)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/style.css">'
        '<script src="/static/plotly.min.js"></script>'
        '<script src="/static/app.js" defer></script></head>\n'
        f'<body><header><b>neurorl</b> {nav} <span id="live"></span></header>\n'
        f'<main id="app" data-page="{escape(kind)}" data-ref="{escape(ref or "")}"><p class="muted">loading…</p></main>\n'
        "</body></html>\n"
    )
