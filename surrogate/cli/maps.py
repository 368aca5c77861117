"""The command that fits a map: ``surrogate fit`` (areas, sites or a grid, with covariates)."""

from __future__ import annotations

from pathlib import Path

import click

from surrogate.cli.common import CONTEXT, float_list, main, user_errors
from surrogate.cli.fit import sampler_options
from surrogate.priors import exact_models

FIT_MODELS = ("surrogate", *exact_models())


def names_list(ctx, param, value):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


@main.command(context_settings=CONTEXT)
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "map_", type=click.Path(dir_okay=False, path_type=Path), help="Areas: a shapefile, GeoJSON or GeoPackage.")
@click.option("--points", type=click.Path(dir_okay=False, path_type=Path), help="Sites: a CSV with columns id, x, y.")
@click.option("--id-column", help="The column naming the areas, in the data and in the map.")
@click.option("--counts", help="Outcome: counts (Poisson; binomial with --trials).")
@click.option("--trials", help="Binomial trials column.")
@click.option("--value", help="Outcome: a real value (Gaussian).")
@click.option("--exposure", help="Expected counts (or population at risk): the log offset.")
@click.option("--population", help="Population column: expected counts at the overall rate (internal standardisation).")
@click.option("--offset", help="A column already on the log scale, added to the linear predictor.")
@click.option("--covariates", callback=names_list, help="Comma-separated covariate columns (standardised by the tool).")
@click.option("--model", default="surrogate", type=click.Choice(list(FIT_MODELS)),
              help="surrogate (needs --decoder), the exact bym2, icar, car or gp model, or hsgp (the approximate GP).")
@click.option("--decoder", type=click.Path(dir_okay=False, path_type=Path),
              help="decoder.json of a run trained with --prior on this domain (needed by surrogate; sets the exact model's prior).")
@click.option("--kernel", help="gp: rbf, matern12, matern32 or matern52  [default: the decoder's, else matern32]")
@click.option("--lengthscale", callback=float_list, help="gp: lengthscale prior lo,hi  [default: the decoder's, else 0.05-0.5 x the extent]")
@click.option("--alpha", callback=float_list, help="car: alpha prior lo,hi  [default: the decoder's, else 0.1,0.99]")
@click.option("--rho", callback=float_list, help="bym2: rho prior lo,hi  [default: the decoder's, else 0,1]")
@click.option("--contiguity", help="queen, rook or fuzzy (touching anywhere)  [default: the decoder's, else queen]")
@click.option("--snap", type=float, help="fuzzy contiguity: polygons within this distance (map units) are neighbours  [default: the decoder's]")
@click.option("--islands", help="Areas without neighbours: refuse, independent or nearest  [default: the decoder's, else refuse]")
@click.option("--iid", is_flag=True, help="Add an unstructured area effect (not with bym2, which has one).")
@click.option("--time-column", help="Space-time: the period column of a long table (one row per area and period; periods 1, 2, 3 or years).")
@click.option("--interaction", default="none", type=click.Choice(["none", "I", "II", "III", "IV", "ar1"]),
              help="Space-time: Knorr-Held interaction type I-IV, or ar1 (AR1 spatial fields in place of the spatial main effect).")
@click.option("--temporal", default="rw1", type=click.Choice(["rw1", "ar1"]), help="Space-time: the temporal main effect.")
@click.option("--forecast", type=int, default=0, help="Space-time: periods to predict past the last one.")
@click.option("--trend-areas", callback=names_list, help="Space-time: comma-separated area ids for trends.png  [default: the surest trends]")
@click.option("--keep-field/--no-keep-field", default=None,
              help="Keep the draws of the field and the latent vectors beside eta, rr and log_lik  [default: up to 1,000 areas]")
@click.option("--intercept-prior", callback=float_list, default="0,2", help="Normal mean,sd of the intercept.")
@click.option("--beta-sd", type=float, default=1.0, help="Normal sd of each standardised coefficient.")
@click.option("--field-sd", type=float, default=1.0, help="Half-normal scale of the field's sd.")
@sampler_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@user_errors
def fit(data, map_, points, id_column, counts, trials, value, exposure, population, offset, covariates, model, decoder, kernel, lengthscale,
        alpha, rho, contiguity, snap, islands, iid, time_column, interaction, temporal, forecast, trend_areas, keep_field, intercept_prior, beta_sd,
        field_sd, chains, warmup, draws, seed, adapt_delta, max_treedepth,
        init_radius, dense_metric, engine, cmdstan_path, verbose, out):  # fmt: skip
    """Fit a map: a surrogate prior, or the exact BYM2, ICAR, CAR or GP model, with covariates and an offset; with --time-column,
    a space-time model (spatial, temporal and interaction effects over area-periods)."""
    from surrogate.errors import SurrogateError
    from surrogate.inference import SamplerSettings, console, get_engine
    from surrogate.tasks.areas_fit import fit_table

    given = [n for n, v in (("lengthscale", lengthscale), ("alpha", alpha), ("rho", rho)) if v]
    if len(given) > 1:
        raise SurrogateError(f"give at most one hyperparameter prior; found {', '.join(given)}")
    if len(intercept_prior) != 2 or not intercept_prior[1] > 0:
        raise SurrogateError(f"intercept-prior must be mean,sd with sd > 0, found {intercept_prior}")
    settings = SamplerSettings(chains, warmup, 1000 if draws is None else draws, seed, adapt_delta, max_treedepth, init_radius, dense_metric)
    console.set_verbose(verbose)
    columns = {"counts": counts, "trials": trials, "value": value, "exposure": exposure, "population": population, "offset": offset,
               "covariates": covariates}  # fmt: skip
    priors = {"intercept": tuple(intercept_prior), "beta_sd": beta_sd, "field_sd": field_sd, "iid": iid}
    for name, v in (("beta-sd", beta_sd), ("field-sd", field_sd)):
        if not v > 0:
            raise SurrogateError(f"{name} must be positive, found {v}")
    result = fit_table(data, model, map_, points, None, id_column, contiguity, columns, decoder, snap=snap, settings=settings,
                       engine=get_engine(engine, cmdstan_path), out=out, kernel=kernel, condition=lengthscale or alpha or rho or None,
                       islands=islands, priors=priors, time=time_column, interaction=interaction, temporal=temporal, forecast=forecast,
                       **({"trend_areas": trend_areas} if trend_areas else {}), **({} if keep_field is None else {"keep_field": keep_field}))  # fmt: skip
    click.echo(result.text)
    files = "cells.csv, trends.csv, maps_periods.png, trends.png" if time_column else "areas.csv, maps.png"
    click.echo(f"outputs in {out}: posterior.nc, summary.csv, diagnostics.json, {files}, engine.log; "
               f"`surrogate report {out}` writes a shareable report")  # fmt: skip
