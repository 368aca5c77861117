"""The batch command: many fits of one command on Dask (a LocalCluster here, or a running scheduler)."""

from __future__ import annotations

from pathlib import Path

import click

from surrogate.cli.common import CONTEXT, main, user_errors


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Batch folder: DIR/<task>/, batch.json, batch.csv.")
@click.option("--scheduler", envvar="SURROGATE_SCHEDULER", help="Address of a running Dask scheduler (tcp://host:8786)  [default: $SURROGATE_SCHEDULER, else a LocalCluster here]")
@click.option("--workers", type=int, help="LocalCluster workers, one thread each  [default: the number of cores]")
@user_errors
def batch(spec, out, scheduler, workers):
    """Run a batch SPEC (YAML or JSON: a command, shared options, tasks) on Dask; a second run resumes."""
    from surrogate.batch import run_batch

    record = run_batch(spec, out, scheduler=scheduler, workers=workers)
    c = record["counts"]
    where = f"{record['wall_s']:.0f} s on {record['scheduler']}" if record["scheduler"] else "nothing to run"
    click.echo(f"{record['command']} batch in {out}: {c['done']} done ({c['resumed']} from an earlier run), {c['failed']} failed; {where}")
    click.echo(f"table: {out / 'batch.csv'}; `surrogate report {out}` writes a report")
    if c["failed"]:
        raise SystemExit(1)
