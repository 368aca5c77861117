"""The ``surrogate`` command line: thin commands, each calling one library function."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from surrogate.errors import SurrogateError

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


def user_errors(fn):
    """Report :class:`SurrogateError` as ``Error: ...`` with exit code 1, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SurrogateError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; completed work is saved", err=True)
            sys.exit(130)

    return wrapper


def int_list(ctx, param, value):
    if value is None or isinstance(value, tuple):
        return value
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, found {value!r}") from None


def float_list(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, found {value!r}") from None


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="surrogate")
def main():
    """Train a decoder in PyTorch and use it as a fast prior in Stan."""


# ----------------------------------------------------------------------------
# train


@main.command(context_settings=CONTEXT)
@click.option("--dataset", default="mnist", help="mnist, fashion-mnist, clusters (simulated 2-D), gp1d or gp2d (GP prior draws).")
@click.option("--digits", callback=int_list, help="Keep only these labels, e.g. 5 or 3,5.")
@click.option("--train-size", type=int, help="Use the first N training examples  [default: all 50,000]")
@click.option("--grid", type=int, help="GP: points per axis, n (gp1d) or n x n cells (gp2d)  [default: 100 / 20]")
@click.option("--kernel", default="matern52", help="GP kernel: rbf, matern12, matern32 or matern52.")
@click.option("--lengthscale", default="0.2", callback=float_list, help="GP lengthscale: fixed, or lo,hi for Uniform(lo, hi) (needed by a cvae).")
@click.option("--variance", default="1.0", callback=float_list, help="GP marginal variance: fixed, or lo,hi for Uniform(lo, hi).")
@click.option("--epoch-size", type=int, default=10_000, help="GP: fresh prior draws per epoch.")
@click.option("--valid-size", type=int, default=2_000, help="GP: fixed validation draws.")
@click.option("--model", default="cvae", help="ae, vae or cvae (conditioned on the one-hot label; on the lengthscale for GP data).")
@click.option("--hidden", default="400,200,100", callback=int_list, help="Encoder widths (1-4 layers); the decoder mirrors them.")
@click.option("--latent", type=int, default=15, help="Latent dimension K.")
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
def train(ctx, out, data_dir, resume, force, **options):
    """Train an AE, VAE or CVAE into a run directory."""
    from surrogate.config import TrainConfig
    from surrogate.train import train as run_training

    settings = options
    if resume and (out / "config.json").is_file():
        # Options not given on the command line come from the saved run.
        saved = TrainConfig.load(out / "config.json").to_dict()
        given = {k: v for k, v in options.items() if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
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
    from surrogate.sample import sample as run_sample

    click.echo(f"wrote {run_sample(run_dir, out, n, label, scales, seed)}")


@main.command("check-prior", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--draws", type=int, default=2000, help="Decoded and exact GP draws per lengthscale.")
@click.option("--lengthscales", callback=float_list, help="PriorCVAE: lengthscales to check  [default: 10%, 50%, 90% of the training range]")
@click.option("--max-cov-error", type=float, default=0.2, help="Fail (exit 1) above this relative covariance error.")
@click.option("--seed", type=int, default=0)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for check_prior.json/.png  [default: RUN_DIR]")
@user_errors
def check_prior(run_dir, draws, lengthscales, max_cov_error, seed, out):
    """Compare a GP surrogate's decoded prior draws with exact GP draws."""
    from surrogate.gp_check import check_prior as run_check
    from surrogate.gp_check import format_check

    result = run_check(run_dir, draws, lengthscales, max_cov_error, seed, out or run_dir)
    click.echo(format_check(result))
    click.echo(f"wrote {(out or run_dir) / 'check_prior.json'} and check_prior.png")
    if not result["passed"]:
        worst = max(r["cov_rel_error"] for r in result["checks"])
        raise click.ClickException(f"prior check failed: relative covariance error {worst:.3f} > --max-cov-error {max_cov_error}")


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Stan JSON to write  [default: RUN_DIR/decoder.json]")
@user_errors
def export(run_dir, out):
    """Write the decoder's weights as Stan JSON data (plus a .meta.json sidecar)."""
    from surrogate.export import export_decoder

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
    from surrogate.evaluate import evaluate_run, format_evaluation

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
    from surrogate.evaluate import plot_latent

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


PIECE_DRAWS = 2000  # inpaint's partitioned / per-class default draws per chain: R-hat <= 1.01 within a piece (docs/benchmarks.md)


def sampler_options(fn):
    """The NUTS options shared by the commands that sample."""
    options = [
        click.option("--chains", type=int, default=4, help="Chains, run in parallel."),
        click.option("--warmup", type=int, default=1000, help="Warmup iterations per chain."),
        click.option("--draws", type=int, help="Saved draws per chain  [default: 1000; inpaint --class-model partitioned "
                                               f"or per-class: {PIECE_DRAWS}, for R-hat <= 1.01 within a piece]"),
        click.option("--seed", type=int, default=1, help="Sampler seed (same draws on both engines)."),
        click.option("--adapt-delta", type=float, default=0.8, help="Target acceptance rate."),
        click.option("--max-treedepth", type=int, default=10),
        click.option("--init", "init_radius", type=float, help="Inits uniform in (-R, R)  [default: Stan's 2]"),
        click.option("--dense-metric", is_flag=True, help="Adapt a dense mass matrix (engine cmdstan only)."),
        click.option("--engine", default="auto", help="auto (CmdStan if installed, else PyStan), cmdstan or pystan."),
        click.option("--cmdstan-path", type=click.Path(file_okay=False, path_type=Path),
                     help="Use the CmdStan installation in this folder  [default: $CMDSTAN, then cmdstanpy's]"),
        click.option("--verbose", is_flag=True, help="Also print the engine's own messages (always kept in OUT/engine.log)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command(context_settings=CONTEXT)
@click.argument("decoder_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mnist-index", type=int, help="Inpaint this image of --split.")
@click.option("--split", default="valid", help="train, valid or test.")
@click.option("--dataset", help="Dataset of --mnist-index  [default: the decoder's]")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="Inpaint this .png/.npy image instead.")
@click.option("--missing", type=float, default=0.5, help="Probability that a pixel is missing.")
@click.option("--mask-seed", type=int, default=2, help="Seed of the random mask.")
@click.option("--mask", "mask_file", type=click.Path(dir_okay=False, path_type=Path), help=".npy/.png mask, nonzero = missing.")
@click.option("--sigma", type=float, default=0.1, help="Noise sd of the observed pixels.")
@click.option("--estimate-sigma", is_flag=True, help="Estimate sigma (half-normal prior) instead.")
@click.option("--class-model", default="softmax", type=click.Choice(["softmax", "partitioned", "per-class"]),
              help="softmax: the blog's model, one fit (its chains may sit in different modes); partitioned (recommended): "
                   "the same model sampled one dominant-class region at a time and combined by the regions' masses; "
                   "per-class: a fit per one-hot class, weighed by marginal likelihoods.")  # fmt: skip
@click.option("--class-screen", type=float,
              help="partitioned / per-class: fit only pieces whose Laplace log evidence is within this many nats of "
                   "the best (inf: all)  [default: 15 partitioned, 30 per-class]")  # fmt: skip
@sampler_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="MNIST folder for --mnist-index.")
@user_errors
def inpaint(decoder_json, mnist_index, split, dataset, image, missing, mask_seed, mask_file, sigma, estimate_sigma, class_model, class_screen,
            chains, warmup, draws, seed, adapt_delta, max_treedepth, init_radius, dense_metric, engine, cmdstan_path, verbose, out, data_dir):  # fmt: skip
    """Inpaint a masked image with Stan's NUTS over the decoder's latent space."""
    from surrogate.diagnostics import format_summary
    from surrogate.export import load_decoder
    from surrogate.inference import console, get_engine
    from surrogate.inpaint import Observation, observation_from_mnist, random_mask, read_array, run_inpaint
    from surrogate.inference import SamplerSettings

    decoder, meta = load_decoder(decoder_json)
    d = decoder["D"]
    if (mnist_index is None) == (image is None):
        raise SurrogateError("give exactly one of --mnist-index N or --image FILE")
    mask = read_array(mask_file, d, "mask") != 0 if mask_file else random_mask(d, missing, mask_seed)
    if image is not None:
        obs = Observation(read_array(image, d, "image"), mask, True, None, str(image))
    else:
        obs = observation_from_mnist(dataset or meta.get("dataset", "mnist"), split, mnist_index, mask, data_dir)
    if draws is None:
        draws = 1000 if class_model == "softmax" else PIECE_DRAWS
    settings = SamplerSettings(chains, warmup, draws, seed, adapt_delta, max_treedepth, init_radius, dense_metric)
    console.set_verbose(verbose)
    engine = get_engine(engine, cmdstan_path)
    click.echo(f"inpainting {obs.source}: {int(mask.sum())} of {d} values missing; {chains} chains ({engine.name} engine)")
    if class_model != "softmax":
        from surrogate.per_class import inpaint_per_class

        if estimate_sigma:
            raise SurrogateError(f"--class-model {class_model} needs a fixed --sigma, found --estimate-sigma")
        click.echo(inpaint_per_class(decoder, meta, obs, sigma, settings, engine, class_screen, out, class_model)["text"])
        click.echo(f"outputs in {out}: posterior.nc, diagnostics.json, summary.txt, class_probs.png, inpaint.png, engine.log; "
                   f"`surrogate report {out}` writes a shareable report")  # fmt: skip
        return
    result = run_inpaint(decoder_json, obs, None if estimate_sigma else sigma, settings, engine, out)
    click.echo(format_summary(result.assessment))
    written = [n for n in ("posterior.nc", "summary.csv", "inpaint.png", "class_probs.png", "trace.png", "rank.png", "engine.log") if (out / n).exists()]
    click.echo(f"outputs in {out}: {', '.join(written)}; `surrogate report {out}` writes a shareable report")


@main.command(context_settings=CONTEXT)
@click.argument("fit_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@user_errors
def report(fit_dir):
    """Write report.html (self-contained) and report.md for a fit or training run directory."""
    from surrogate.report import build_report

    html_path, md_path = build_report(fit_dir)
    click.echo(f"wrote {html_path} and {md_path}")


# ----------------------------------------------------------------------------
# GP models


@main.command("gp-simulate", context_settings=CONTEXT)
@click.option("--dim", type=click.IntRange(1, 2), default=1, help="1 (a curve) or 2 (a map).")
@click.option("--grid", type=int, default=100, help="Points per axis: n (1-D) or n x n cells (2-D).")
@click.option("--kernel", default="matern52", help="rbf, matern12, matern32 or matern52.")
@click.option("--lengthscale", type=float, default=0.2, help="True lengthscale.")
@click.option("--variance", type=float, default=1.0, help="True marginal variance.")
@click.option("--intercept", type=float, default=1.0, help="True intercept of the linear predictor.")
@click.option("--observed", type=float, default=0.15, help="Share of cells observed, at random.")
@click.option("--likelihood", default="poisson", help="gaussian, poisson (log link) or binomial (logit link).")
@click.option("--trials", type=int, default=10, help="Binomial trials per observed cell.")
@click.option("--noise-sd", type=float, default=0.3, help="Gaussian noise sd.")
@click.option("--seed", type=int, default=1)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="JSON data set to write.")
@user_errors
def gp_simulate(dim, grid, kernel, lengthscale, variance, intercept, observed, likelihood, trials, noise_sd, seed, out):
    """Simulate a data set from a known GP (the true field is kept for scoring)."""
    from surrogate.fileio import write_json
    from surrogate.gp_fit import simulate

    data = simulate(dim, grid, kernel, lengthscale, variance, observed, likelihood, intercept, trials, noise_sd, seed)
    write_json(out, data, indent=None)
    click.echo(f"wrote {out}: {len(data['obs_idx'])} of {grid**dim} cells observed ({likelihood})")


@main.command("gp-fit", context_settings=CONTEXT)
@click.argument("data_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", default="surrogate", type=click.Choice(["surrogate", "exact", "hsgp"]), help="The GP prior.")
@click.option("--decoder", type=click.Path(dir_okay=False, path_type=Path), help="decoder.json of a gp1d/gp2d run (needed by surrogate; sets the priors of the others).")
@click.option("--kernel", help="exact/hsgp kernel  [default: the decoder's, else the data's truth, else matern52]")
@click.option("--lengthscale-prior", callback=float_list, help="Uniform lo,hi (one value: fixed)  [default: the decoder's training range, else 0.05,0.5]")
@click.option("--variance", type=float, help="exact/hsgp marginal variance  [default: the decoder's, else 1]")
@click.option("--hsgp-m", type=int, help="HSGP basis functions per dimension  [default: Riutort-Mayol et al.'s rule]")
@click.option("--hsgp-c", type=float, help="HSGP boundary factor  [default: the same rule]")
@sampler_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@user_errors
def gp_fit(data_json, model, decoder, kernel, lengthscale_prior, variance, hsgp_m, hsgp_c,
           chains, warmup, draws, seed, adapt_delta, max_treedepth, init_radius, dense_metric, engine, cmdstan_path, verbose, out):  # fmt: skip
    """Fit a surrogate, exact or HSGP model to a GP data set."""
    from surrogate.gp_fit import fit_gp, format_fit, read_data
    from surrogate.inference import SamplerSettings, console, get_engine

    settings = SamplerSettings(chains, warmup, 1000 if draws is None else draws, seed, adapt_delta, max_treedepth, init_radius, dense_metric)
    console.set_verbose(verbose)
    result = fit_gp(model, read_data(data_json), settings, get_engine(engine, cmdstan_path), out, decoder_json=decoder, kernel=kernel,
                    lengthscale=lengthscale_prior, variance=variance, hsgp_m=hsgp_m, hsgp_c=hsgp_c)  # fmt: skip
    click.echo(format_fit(result))
    click.echo(f"outputs in {out}: posterior.nc, summary.csv, diagnostics.json, field.png" + (", lengthscale.png" if "ell_mean" in result else "") + ", engine.log")
