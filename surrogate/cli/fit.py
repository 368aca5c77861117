"""Commands that fit with Stan, and the report: inpaint, report, gp-simulate, gp-fit."""

from __future__ import annotations

import time
from pathlib import Path

import click

from surrogate.cli.common import CONTEXT, float_list, main, user_errors
from surrogate.errors import SurrogateError

PIECE_DRAWS = 2000  # inpaint's partitioned / per-class default draws per chain: R-hat <= 1.01 within a piece (docs/benchmarks.md)


def sampler_options(fn):
    """The NUTS options shared by the commands that sample."""
    options = [
        click.option("--chains", type=int, default=4, help="Chains, run in parallel."),
        click.option("--warmup", type=int, default=1000, help="Warmup iterations per chain."),
        click.option("--draws", type=int, help="Saved draws per chain  [default: 1000; inpaint --class-model partitioned "
                                               f"or per-class: {PIECE_DRAWS}, for R-hat <= 1.01 within a piece]"),
        click.option("--seed", type=int, default=1, help="Sampler seed (same draws on both engines)."),
        click.option("--adapt-delta", type=float, help="Target acceptance rate  [default: 0.9 for a surrogate conditioned on its hyperparameter (measured: fewer divergences), else 0.8]"),
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
    from surrogate.decoder.io import load_decoder
    from surrogate.inference import SamplerSettings, console, get_engine
    from surrogate.tasks.inpaint import Observation, observation_from_mnist, random_mask, read_array, run_inpaint

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
        from surrogate.tasks.pieces import inpaint_per_class

        if estimate_sigma:
            raise SurrogateError(f"--class-model {class_model} needs a fixed --sigma, found --estimate-sigma")
        click.echo(inpaint_per_class(decoder, meta, obs, sigma, settings, engine, class_screen, out, class_model).text)
        click.echo(f"outputs in {out}: posterior.nc, diagnostics.json, summary.txt, class_probs.png, inpaint.png, engine.log; "
                   f"`surrogate report {out}` writes a shareable report")  # fmt: skip
        return
    result = run_inpaint(decoder_json, obs, None if estimate_sigma else sigma, settings, engine, out)
    click.echo(result.text)
    written = [n for n in ("posterior.nc", "summary.csv", "inpaint.png", "class_probs.png", "trace.png", "rank.png", "engine.log") if (out / n).exists()]
    click.echo(f"outputs in {out}: {', '.join(written)}; `surrogate report {out}` writes a shareable report")


@main.command("compile", context_settings=CONTEXT)
@click.argument("programs", nargs=-1)
@click.option("--jobs", type=int, default=2, help="Programs compiled at once (each compile: one core, about 2 GB).")
@click.option("--engine", default="auto", help="auto (CmdStan if installed, else PyStan), cmdstan or pystan.")
@user_errors
def compile_command(programs, jobs, engine):
    """Compile the Stan programs (default: all of stan/) into the engine's cache, JOBS at a time."""
    from surrogate.inference.compile import compile_programs

    t0 = time.perf_counter()
    for r in compile_programs(tuple(programs), jobs, engine):
        state = "cached" if r["compiled_now"] is False else f"compiled in {r['seconds']:.0f} s"
        click.echo(f"{r['program']}.stan: {state} ({r['engine']})")
    click.echo(f"done in {time.perf_counter() - t0:.0f} s")


@main.command(context_settings=CONTEXT)
@click.argument("fit_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@user_errors
def report(fit_dir):
    """Write report.html (self-contained) and report.md for a fit or training run directory."""
    from surrogate.reports.fit import build_report

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
    from surrogate.tasks.gp_fit import simulate

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
    from surrogate.inference import SamplerSettings, console, get_engine
    from surrogate.tasks.gp_fit import fit_gp, read_data

    settings = SamplerSettings(chains, warmup, 1000 if draws is None else draws, seed, adapt_delta, max_treedepth, init_radius, dense_metric)
    console.set_verbose(verbose)
    result = fit_gp(model, read_data(data_json), settings, get_engine(engine, cmdstan_path), out, decoder_json=decoder, kernel=kernel,
                    lengthscale=lengthscale_prior, variance=variance, hsgp_m=hsgp_m, hsgp_c=hsgp_c)  # fmt: skip
    click.echo(result.text)
    click.echo(f"outputs in {out}: posterior.nc, summary.csv, diagnostics.json, field.png" + (", lengthscale.png" if "ell_mean" in result.diagnostics else "") + ", engine.log")
