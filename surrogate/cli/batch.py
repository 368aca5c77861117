"""Commands that run batches on Dask: ``batch`` (many fits of one command) and ``sbc`` (simulation-based calibration)."""

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


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--replicates", type=int, default=200, help="Data sets drawn from the exact prior, each fitted with the surrogate.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder: data/, fits/ (the batch), sbc.json, sbc.png.")
@click.option("--likelihood", default="gaussian", type=click.Choice(["gaussian", "poisson"]), help="Likelihood of the simulated data.")
@click.option("--observed", type=float, default=0.3, help="Share of cells observed, at random per replicate.")
@click.option("--chains", type=int, default=2, help="Chains per fit.")
@click.option("--warmup", type=int, default=500, help="Warmup iterations per chain.")
@click.option("--draws", type=int, default=500, help="Draws per chain (ranks are taken among 99 of them, thinned evenly).")
@click.option("--seed", type=int, default=1, help="Seed of the replicates (truths, data) and of the fits.")
@click.option("--scheduler", envvar="SURROGATE_SCHEDULER", help="Address of a running Dask scheduler  [default: $SURROGATE_SCHEDULER, else a LocalCluster here]")
@click.option("--workers", type=int, help="LocalCluster workers, one thread each  [default: the number of cores]")
@user_errors
def sbc(run_dir, replicates, out, likelihood, observed, chains, warmup, draws, seed, scheduler, workers):
    """Simulation-based calibration of a GP surrogate: truths from the exact prior, fits as a batch on Dask; resumes."""
    from surrogate.tasks.sbc import format_sbc, run_sbc

    result = run_sbc(run_dir, replicates, out, likelihood, observed, chains, warmup, draws, seed, scheduler, workers)
    click.echo(format_sbc(result))
    click.echo(f"outputs in {out}: sbc.json, sbc.png, data/, fits/ (batch.json)")
