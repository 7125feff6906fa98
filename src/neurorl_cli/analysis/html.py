"""One self-contained HTML page: figures embedded as base64 PNG, every name escaped."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd

CSS = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
.notice { background: #fff6dd; border-left: 4px solid #e0b000; padding: 0.6em 1em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


@dataclass
class Section:
    """One part of a report. Each block is kept twice: as HTML for the page, and as data in
    `items` (text, a notice, a figure with the CSV of its data, a table as a DataFrame), for
    views that draw it themselves."""

    title: str
    blocks: list[str] = field(default_factory=list)  # HTML fragments, already escaped
    items: list[dict] = field(default_factory=list)

    def text(self, text: str) -> Section:
        self.blocks.append(f"<p>{escape(text)}</p>")
        self.items.append({"kind": "text", "text": text})
        return self

    def notice(self, text: str, command: str | None = None) -> Section:
        hint = f" <code>{escape(command)}</code>" if command else ""
        self.blocks.append(f'<p class="notice">{escape(text)}{hint}</p>')
        self.items.append({"kind": "notice", "text": text, "command": command})
        return self

    def figure(self, png: Path, caption: str, links: list[Path] = (), data: Path | None = None) -> Section:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        mime = "image/gif" if Path(png).suffix.lower() == ".gif" else "image/png"  # an animation shows as one
        files = " ".join(f'<a href="{escape(p.name)}">{escape(p.suffix.lstrip("."))}</a>' for p in links)
        self.blocks.append(
            f'<figure><img alt="{escape(caption)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{escape(caption)} {files}</figcaption></figure>"
        )
        self.items.append({"kind": "figure", "image": Path(png), "caption": caption, "data": data, "files": list(links)})
        return self

    def table(self, frame: pd.DataFrame) -> Section:
        # to_html(escape=True) escapes cell text and column names.
        self.blocks.append(frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}"))
        self.items.append({"kind": "table", "frame": frame})
        return self


def page(title: str, sections: list[Section], footer: str = "") -> str:
    body = "\n".join(
        f"<section><h2>{escape(s.title)}</h2>\n" + "\n".join(s.blocks) + "\n</section>" for s in sections
    )
    foot = f"<footer><p><small>{escape(footer)}</small></p></footer>" if footer else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>\n{body}\n{foot}</body></html>\n"
    )
