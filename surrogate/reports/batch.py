"""A batch's report: every task's status, timing and headline numbers, and its errors.

Rendered by :mod:`surrogate.reports.render` from ``batch.json``; each finished task's own folder
keeps its fit, which ``surrogate report DIR/<task>`` reports in full.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from surrogate.reports.render import Section, write_report


def batch_sections(record: dict) -> list[Section]:
    tasks = record["tasks"]
    c = record["counts"]
    keys: list[str] = []
    for t in tasks:
        keys += [k for k in t.get("headline", {}) if k not in keys]
    rows = [[t["name"], t["status"], t.get("wall_s", ""), t.get("attempts", ""), *[t.get("headline", {}).get(k, "") for k in keys]] for t in tasks]
    done = [t for t in tasks if t["status"] == "done"]
    walls = [t["wall_s"] for t in done if isinstance(t.get("wall_s"), (int, float))]
    run = [["command", record["command"]], ["spec", record["spec"]], ["scheduler", record["scheduler"] or "none (every task was finished)"],
           ["worker threads", record["workers"] or ""], ["batch wall time (s)", record["wall_s"]],
           ["tasks", f"{len(tasks)}: {c['done']} done ({c['resumed']} from an earlier run), {c['failed']} failed, "
                     f"{c.get('interrupted', 0)} interrupted, {c.get('pending', 0)} pending"]]  # fmt: skip
    if walls:
        run.append(["task wall time (s): median / max / sum", f"{np.median(walls):.1f} / {max(walls):.1f} / {sum(walls):.1f}"])
    failed = [t for t in tasks if t["status"] == "failed"]
    sections = [Section("The batch", tables=[(["", ""], run)]),
                Section("Tasks", [f"Headline numbers from each task's diagnostics.json; `surrogate report {record['out']}/<task>` reports one in full."],
                        [(["task", "status", "wall s", "attempts", *keys], rows)]),
                Section("Problems", [], [(["task", "error"], [[t["name"], t.get("error", "")] for t in failed])] if failed else [],
                        warnings=[f"{len(failed)} tasks failed after a retry: rerun the batch to try them again"] if failed else [],
                        ok="Every task finished.")]  # fmt: skip
    return sections


def build_batch_report(folder: Path) -> tuple[Path, Path]:
    record = json.loads((folder / "batch.json").read_text())
    return write_report(folder, f"surrogate batch report: {folder.name}", f"{record['command']} batch.", batch_sections(record))
