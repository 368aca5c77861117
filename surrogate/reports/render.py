"""A report is data: a title, an intro and sections; one renderer writes self-contained XHTML
(figures embedded, nothing fetched when viewed, parseable by any XML parser), one writes Markdown
(figures linked)."""

from __future__ import annotations

import base64
import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surrogate.fileio import write_text

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
.ok{background:#e8f5e9;border-left:4px solid #43a047;padding:.4em .8em}img{max-width:100%;border:1px solid #eee}"""


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list]]] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (file, caption)
    warnings: list[str] | None = None  # a warnings section: each shown as a warning; none: `ok` is shown
    ok: str = ""
    collapsed: bool = False  # HTML: tables folded away (long listings)


def fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:g}"
    return str(value)


def html_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_html(title: str, intro: str, sections: list[Section]) -> str:
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE html>",
             '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"]  # fmt: skip
    for s in sections:
        parts.append(f"<h2>{html.escape(s.heading)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        if s.warnings is not None:
            parts.append("".join(f'<div class="warn">{html.escape(w)}</div>' for w in s.warnings) or f'<div class="ok">{html.escape(s.ok)}</div>')
        tables = [html_table(header, rows) for header, rows in s.tables]
        if s.collapsed and tables:
            n = sum(len(rows) for _, rows in s.tables)
            tables = [f"<details><summary>{n} rows</summary>", *tables, "</details>"]
        parts += tables
        for path, caption in s.figures:
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<h3>{html.escape(caption)}</h3><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"/>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(title: str, intro: str, sections: list[Section], base: Path) -> str:
    md = [f"# {title}", "", intro, ""]
    for s in sections:
        md += [f"## {s.heading}", ""]
        md += [p + "\n" for p in s.paragraphs]
        if s.warnings is not None:
            md += ([f"- **{w}**" for w in s.warnings] or [s.ok]) + [""]
        md += [md_table(header, rows) + "\n" for header, rows in s.tables]
        md += [f"![{caption}]({path.relative_to(base)})\n" for path, caption in s.figures]
    return "\n".join(md)


def write_report(folder: Path, title: str, intro: str, sections: list[Section]) -> tuple[Path, Path]:
    """``report.html`` and ``report.md`` in ``folder``; the intro says when and from where."""
    intro = f"Written {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} from {folder}." + (f" {intro}" if intro else "")
    html_path, md_path = folder / "report.html", folder / "report.md"
    write_text(html_path, render_html(title, intro, sections))
    write_text(md_path, render_markdown(title, intro, sections, folder))
    return html_path, md_path
