"""Batch specs: one command, options shared by all tasks, and the tasks (YAML or JSON).

A spec names a ``surrogate`` command that writes a fit folder, the arguments and options its tasks
share, and the tasks, each a name and its own options, or a range that expands into one task per
value::

    command: inpaint
    args: [runs/cvae/decoder.json]          # positional arguments shared by all tasks
    options: {split: test, class-model: partitioned, chains: 4}
    tasks:
      - name: reference
        options: {split: valid, mnist-index: 0, mask-seed: 2}
      - range: {mnist-index: 0-19}          # tasks mnist-index-0 .. mnist-index-19
        options: {seed: 1}                  # options of the range's tasks

Option names are the command's own (``mnist-index`` or ``mnist_index``; flags take true/false);
``--out`` belongs to the batch (``DIR/<task>/``). Relative paths, in ``args`` and in options the
command takes as paths, are read from the spec file's folder. Every task's command line is parsed
by the command's own parser before anything runs, so a bad value is refused up front, naming the task.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import click

from surrogate.errors import SurrogateError

#: The commands a batch can run: each writes one fit folder to ``--out``. Headline keys are read
#: from the folder's diagnostics.json into batch.json and batch.csv, where present.
HEADLINES = {
    "inpaint": ("label", "predicted_class", "predicted_prob", "rmse_missing", "rmse_missing_pooled", "chains_disagree",
                "max_rhat", "max_rhat_weighted", "min_ess_bulk", "divergences"),
    "gp-fit": ("model", "rmse", "coverage90", "ell_mean", "elpd_loo", "max_rhat", "min_ess_bulk", "divergences", "ess_per_s"),
    "fit": ("model", "elpd_loo", "max_rhat", "min_ess_bulk", "divergences", "ess_per_s"),
}  # fmt: skip
COMMANDS = tuple(HEADLINES)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SPEC_KEYS = ("command", "args", "options", "tasks")
TASK_KEYS = ("name", "args", "options", "range")


@dataclass(frozen=True)
class Task:
    """One task: a name (its folder) and the command line that runs it, without ``--out``. Picklable."""

    name: str
    command: str
    argv: tuple[str, ...]


def click_command(name: str) -> click.Command:
    """The ``surrogate`` command a batch may run; unknown names list the valid ones."""
    from surrogate.cli import main

    if name not in COMMANDS:
        raise SurrogateError(f"unknown batch command {name!r}; valid commands: {', '.join(COMMANDS)}")
    return main.commands[name]


def read_spec(path: str | Path) -> dict:
    """The spec in a YAML (``.yaml``/``.yml``) or JSON file, as a dict."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SurrogateError(f"batch spec {path} does not exist") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            spec = json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise SurrogateError(f"batch spec {path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {exc}") from None
    if not isinstance(spec, dict):
        raise SurrogateError(f"batch spec {path} must hold a mapping with keys {', '.join(SPEC_KEYS)}, found {type(spec).__name__}")
    return spec


def expand_range(text, key: str) -> list[int]:
    """``"0-99"`` (inclusive), ``"1,4,9"`` or a list of integers."""
    if isinstance(text, list) and text and all(isinstance(v, int) and not isinstance(v, bool) for v in text):
        return text
    if isinstance(text, int) and not isinstance(text, bool):
        return [text]
    m = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*", str(text))
    if m and int(m.group(1)) <= int(m.group(2)):
        return list(range(int(m.group(1)), int(m.group(2)) + 1))
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise SurrogateError(f"range of {key} must be like 0-99 (inclusive), 1,4,9 or a list of integers, found {text!r}")
    return values


def option_argv(cmd: click.Command, options: dict, where: str, base: Path) -> list[str]:
    """``options`` as the command's own flags; unknown names list the valid ones."""
    params = {}
    for p in cmd.params:
        if isinstance(p, click.Option):
            for opt in p.opts:
                if opt.startswith("--"):
                    params[opt[2:]] = p
    argv: list[str] = []
    for key, value in (options or {}).items():
        name = str(key).replace("_", "-")
        if name == "out":
            raise SurrogateError(f"{where}: option out is set by the batch (each task writes DIR/<task>/); remove it")
        if name not in params:
            valid = ", ".join(sorted(n for n in params if n not in ("out", "help")))
            raise SurrogateError(f"{where}: unknown option {key!r} of `surrogate {cmd.name}`; valid options: {valid}")
        p = params[name]
        if p.is_flag:
            if not isinstance(value, bool):
                raise SurrogateError(f"{where}: option {name} is a flag and takes true or false, found {value!r}")
            argv += [f"--{name}"] if value else []
            continue
        if value is None or isinstance(value, (dict, list)):
            raise SurrogateError(f"{where}: option {name} takes one value, found {value!r}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(p.type, click.Path) and text and not Path(text).is_absolute():
            text = str(base / text)
        argv += [f"--{name}", text]
    return argv


def positional_argv(args, where: str, base: Path) -> list[str]:
    if args is None:
        return []
    if not isinstance(args, list):
        raise SurrogateError(f"{where}: args must be a list of positional arguments, found {args!r}")
    out = []
    for a in args:
        text = str(a)
        candidate = base / text
        out.append(str(candidate) if not Path(text).is_absolute() and candidate.exists() else text)
    return out


def check_keys(obj: dict, valid, where: str) -> None:
    unknown = [k for k in obj if k not in valid]
    if unknown:
        raise SurrogateError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")


def build_tasks(spec: dict, base: str | Path = ".") -> list[Task]:
    """The spec's tasks, each parsed by the command's own parser; errors name the task."""
    base = Path(base).resolve()
    check_keys(spec, SPEC_KEYS, "batch spec")
    if "command" not in spec:
        raise SurrogateError(f"batch spec lacks 'command'; valid commands: {', '.join(COMMANDS)}")
    command = str(spec["command"])
    cmd = click_command(command)
    if not isinstance(spec.get("options", {}) or {}, dict):
        raise SurrogateError(f"batch spec: options must be a mapping of option names to values, found {spec['options']!r}")
    shared_args = positional_argv(spec.get("args"), "batch spec", base)
    shared = dict(spec.get("options") or {})
    entries = spec.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise SurrogateError(f"batch spec: tasks must be a non-empty list of tasks (name and options, or a range), found {entries!r}")
    tasks: list[Task] = []
    for i, entry in enumerate(entries):
        where = f"task {i + 1}"
        if not isinstance(entry, dict):
            raise SurrogateError(f"{where}: expected a mapping with name and options, or range, found {entry!r}")
        check_keys(entry, TASK_KEYS, where)
        own = entry.get("options") or {}
        if not isinstance(own, dict):
            raise SurrogateError(f"{where}: options must be a mapping, found {own!r}")
        args = positional_argv(entry["args"], where, base) if "args" in entry else shared_args
        if "range" in entry:
            rng = entry["range"]
            if not isinstance(rng, dict) or len(rng) != 1:
                raise SurrogateError(f"{where}: range must name one option and its values, e.g. mnist-index: 0-99, found {rng!r}")
            (key, values), = rng.items()
            prefix = entry.get("name") or str(key).replace("_", "-")
            variants = [(f"{prefix}-{v}", {**own, key: v}) for v in expand_range(values, str(key))]
        else:
            if "name" not in entry:
                raise SurrogateError(f"{where}: a task needs a name (or a range)")
            variants = [(str(entry["name"]), own)]
        for name, options in variants:
            if not NAME_RE.match(name):
                raise SurrogateError(f"{where}: task name must be letters, digits, '.', '_' or '-' (a folder name), found {name!r}")
            merged = {**shared, **options}
            argv = args + option_argv(cmd, merged, f"task {name}", base)
            try:
                cmd.make_context(f"surrogate {command}", [*argv, "--out", "_"], resilient_parsing=False)
            except click.ClickException as exc:
                raise SurrogateError(f"task {name}: {exc.format_message()}") from None
            tasks.append(Task(name, command, tuple(argv)))
    seen: dict[str, int] = {}
    for t in tasks:
        seen[t.name] = seen.get(t.name, 0) + 1
    repeated = [n for n, c in seen.items() if c > 1]
    if repeated:
        raise SurrogateError(f"batch spec: task names must be unique (each is a folder); repeated: {', '.join(repeated)}")
    return tasks


def load_tasks(path: str | Path) -> tuple[str, list[Task]]:
    """(command, tasks) of a spec file; relative paths are read from its folder."""
    spec = read_spec(path)
    tasks = build_tasks(spec, Path(path).parent)
    return tasks[0].command, tasks
