"""Commands of the PyTorch side: train, sample, check-prior, export, evaluate, latent, doctor."""

from __future__ import annotations

from pathlib import Path

import click

from surrogate.cli.common import CONTEXT, float_list, int_list, main, user_errors

# ----------------------------------------------------------------------------
# train


@main.command(context_settings=CONTEXT)
@click.option("--dataset", default="mnist", help="mnist, fashion-mnist, clusters (simulated 2-D), gp1d or gp2d (GP prior draws).")
@click.option("--digits", callback=int_list, help="Keep only these labels, e.g. 5 or 3,5.")
@click.option("--train-size", type=int, help="Use the first N training examples  [default: all 50,000]")
@click.option("--grid", type=int, help="GP: points per axis, n (gp1d) or n x n cells (gp2d)  [default: 100 / 20]")
@click.option("--kernel", default="matern52", help="GP kernel: rbf, matern12, matern32 or matern52.")
@click.option("--lengthscale", callback=float_list,
              help="GP lengthscale: fixed, or lo,hi for Uniform(lo, hi) (needed by a cvae)  [default: 0.2 on gp1d/gp2d; "
                   "0.05-0.5 x the extent of a map or of sites, in its units]")
@click.option("--variance", default="1.0", callback=float_list, help="GP marginal variance: fixed, or lo,hi for Uniform(lo, hi).")
@click.option("--epoch-size", type=int, default=10_000, help="GP: fresh prior draws per epoch.")
@click.option("--valid-size", type=int, default=2_000, help="GP: fixed validation draws.")
@click.option("--prior", help="Spatial prior to learn: gp, icar, bym2, car or agg-gp (aggVAE), on --map, --points or --grid.")
@click.option("--map", "map_", type=click.Path(dir_okay=False, path_type=Path), help="Areas: a shapefile, GeoJSON or GeoPackage.")
@click.option("--points", type=click.Path(dir_okay=False, path_type=Path), help="Sites: a CSV with columns id, x, y.")
@click.option("--id-column", help="The map's (or sites file's) id column.")
@click.option("--contiguity", default="queen", help="Neighbours: queen (sharing a vertex), rook (sharing an edge) or fuzzy "
              "(touching anywhere: for maps whose shared edges lack shared vertices).")
@click.option("--snap", type=float, help="fuzzy contiguity: polygons within this distance (map units) are neighbours too.")
@click.option("--islands", default="refuse", help="Areas without neighbours: refuse, independent or nearest.")
@click.option("--alpha", default="0.1,0.99", callback=float_list, help="CAR dependence: fixed, or lo,hi (a cvae conditions on it).")
@click.option("--rho", default="0,1", callback=float_list, help="BYM2 mixing: fixed, or lo,hi (a cvae conditions on it).")
@click.option("--agg-grid", type=int, default=30, help="agg-gp: points per axis of the fine grid over the map.")
@click.option("--model", default="cvae", help="ae, vae or cvae (conditioned on the one-hot label; on the lengthscale for GP data).")
@click.option("--hidden", default="400,200,100", callback=int_list, help="Encoder widths (1-4 layers); the decoder mirrors them.")
@click.option("--latent", default="15", help="Latent size K, or auto (GP and spatial priors: the K whose Karhunen-Loeve basis keeps 99% of the variance over the prior's range).")
@click.option("--linear-path/--no-linear-path", default=None,
              help="Decoder = the prior's linear Karhunen-Loeve path (B L(c) z for a CVAE, A z else) + MLP  [default: on for GP and spatial priors]")
@click.option("--residual/--no-residual", default=None,
              help="Train the decoder MLP beside a CVAE's conditioned linear path  [default: off when the prior is Gaussian at each c (the path alone is its best decoder), else on]")
@click.option("--activation", default="elu", help="Hidden activation: elu, tanh, relu or softplus.")
@click.option("--output-activation", help="sigmoid or identity  [default: sigmoid for images]")
@click.option("--loss", help="Reconstruction loss: bce or gaussian  [default: bce for images]")
@click.option("--noise-scale", type=float, help="Standard deviation of the gaussian loss  [default: 1 for GP draws, else 0.1]")
@click.option("--beta", type=float, default=1.0, help="KL weight (beta-VAE).")
@click.option("--kl-warmup", type=float, default=0.0, help="Epochs of linear KL warm-up from 0 to beta.")
@click.option("--free-bits", type=float, default=0.0, help="Nats per latent dimension free of KL penalty.")
@click.option("--denoise", type=float, default=0.0, help="Sd of Gaussian noise on the encoder input.")
@click.option("--sparsity", type=float, default=0.0, help="L1 weight on the code (sparse autoencoder).")
@click.option("--dropout", type=float, default=0.0, help="Dropout probability after each encoder hidden layer (dropout autoencoder).")
@click.option("--epochs", type=int, default=30, help="Total epochs (a resumed run continues up to this).")
@click.option("--patience", type=int, default=5, show_default=True,
              help="Prior draws with a linear path: stop when the decoder's covariance error has not improved for this many epochs (0: never); the best epoch is kept.")
@click.option("--batch-size", type=int, default=128)
@click.option("--lr", type=float, default=1e-3, help="Adam learning rate.")
@click.option("--seed", type=int, default=1)
@click.option("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps or cpu.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder with the IDX files  [default: $SURROGATE_DATA_DIR, then the cache]")
@click.option("--resume", is_flag=True, help="Continue the run in --out up to --epochs.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
@click.pass_context
@user_errors
def train(ctx, out, data_dir, resume, force, map_, **options):
    """Train an AE, VAE or CVAE into a run directory (on images, or on draws of a GP or spatial prior)."""
    from surrogate.nn.config import TrainConfig
    from surrogate.nn.train import train as run_training

    options["map"] = str(map_.resolve()) if map_ else None
    options["points"] = str(options["points"].resolve()) if options["points"] else None
    if options["prior"] and ctx.get_parameter_source("dataset") == click.core.ParameterSource.DEFAULT:
        options["dataset"] = "spatial"
    from surrogate.api.train import resolve_latent

    options["latent"], message = resolve_latent(options["latent"], TrainConfig(**{**options, "latent": 1, "model": "vae"}))
    if message:
        click.echo(message)
    settings = options
    if resume and (out / "config.json").is_file():
        # Options not given on the command line come from the saved run.
        saved = TrainConfig.load(out / "config.json").to_dict()
        given = {k: v for k, v in options.items() if ctx.get_parameter_source("map_" if k == "map" else k) not in (click.core.ParameterSource.DEFAULT, None)}
        settings = {**saved, **given}
    result = run_training(TrainConfig(**settings), out, data_dir=data_dir, resume=resume, force=force, log=click.echo)
    if result.metrics:
        click.echo(f"done: {out} (checkpoint.pt, metrics.csv, learning_curves.png)")


# ----------------------------------------------------------------------------
# sample, export, doctor


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", default="samples.png", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--n", type=int, default=9, help="Samples per row (rows of directions with --scales).")
@click.option("--label", type=int, help="Only this class (CVAE).")
@click.option("--scales", callback=float_list, help="Decode random unit directions scaled by each factor, e.g. 0,2,4.")
@click.option("--seed", type=int, default=0)
@user_errors
def sample(run_dir, out, n, label, scales, seed):
    """Decode prior draws z ~ N(0, I) into an image grid."""
    from surrogate.nn.sample import sample as run_sample

    click.echo(f"wrote {run_sample(run_dir, out, n, label, scales, seed)}")


@main.command("check-prior", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--draws", type=int, default=2000, help="Decoded and exact GP draws per lengthscale.")
@click.option("--lengthscales", "--values", callback=float_list,
              help="A CVAE: condition values (lengthscales, CAR alpha, BYM2 rho) to check  [default: 10%, 50%, 90% of the training range]")
@click.option("--max-cov-error", type=float, default=0.2, help="Fail (exit 1) above this relative covariance error.")
@click.option("--seed", type=int, default=0)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for check_prior.json/.png  [default: RUN_DIR]")
@user_errors
def check_prior(run_dir, draws, lengthscales, max_cov_error, seed, out):
    """Compare a surrogate's decoded prior draws with exact draws of its GP or spatial prior."""
    from surrogate.tasks.gp_check import check_prior as run_check
    from surrogate.tasks.gp_check import format_check

    result = run_check(run_dir, draws, lengthscales, max_cov_error, seed, out or run_dir)
    click.echo(format_check(result))
    click.echo(f"wrote {(out or run_dir) / 'check_prior.json'} and check_prior.png")
    if not result["passed"]:
        worst = max(r["cov_error"] for r in result["checks"])
        raise click.ClickException(f"prior check failed: relative covariance error {worst:.3f} > --max-cov-error {max_cov_error}")


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Stan JSON to write  [default: RUN_DIR/decoder.json]")
@user_errors
def export(run_dir, out):
    """Write the decoder's weights as Stan JSON data (plus a .meta.json sidecar)."""
    from surrogate.nn.export import export_decoder

    data_path, meta_path = export_decoder(run_dir, out)
    click.echo(f"wrote {data_path} and {meta_path}")


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", help="train, valid or test (GP prior draws: valid or test, fresh draws with a fixed seed).")
@click.option("--k", type=int, default=100, help="Importance samples per example for the IWAE bound (1: the ELBO).")
@click.option("--n", type=int, default=1000, help="Examples of the split to evaluate.")
@click.option("--seed", type=int, default=0, help="Seed of the Monte Carlo draws.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for evaluate.json and the figures  [default: RUN_DIR/evaluate]")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="MNIST folder  [default: $SURROGATE_DATA_DIR, then the cache]")
@user_errors
def evaluate(run_dir, split, k, n, seed, out, data_dir):
    """How good a generative model is the run's VAE: ELBO terms, KL per dimension, active units, IWAE, PCA."""
    from surrogate.nn.evaluate import evaluate_run, format_evaluation

    out = out or run_dir / "evaluate"
    click.echo(format_evaluation(evaluate_run(run_dir, split, k, n, out, data_dir, seed)))
    click.echo(f"outputs in {out}: evaluate.json, evaluate.txt, scores.csv, anomalies.png" + ("" if not (out / "kl_per_dim.png").exists() else ", kl_per_dim.png")
               + f"; `surrogate report {run_dir}` shows them")  # fmt: skip


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", default="latent.png", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--split", default="test", help="train, valid or test (GP prior draws: valid or test).")
@click.option("--n", type=int, default=2000, help="Examples to encode.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="MNIST folder  [default: $SURROGATE_DATA_DIR, then the cache]")
@user_errors
def latent(run_dir, out, split, n, data_dir):
    """Encoder means of a split in 2-D, coloured by class, with the prior's 1σ/2σ circles."""
    from surrogate.nn.evaluate import plot_latent

    click.echo(f"wrote {plot_latent(run_dir, out, split, n, data_dir)}")


@main.command(context_settings=CONTEXT)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Check this MNIST folder instead.")
@user_errors
def doctor(data_dir):
    """Show versions, the torch device, the Stan engines and where MNIST is read from."""
    from surrogate.doctor import report

    click.echo(report(data_dir))


# ----------------------------------------------------------------------------
# inpaint
