"""Cost and fidelity as the map grows, from a few hundred to 5,000 locations (issue: faithful at any size).

Synthetic, irregular and inside a real outline (North Carolina's mainland, libpysal's bundled map, in degrees):

* ``bym2``: Voronoi maps of N random points, Poisson counts (10 expected per area, one covariate) from an exact
  BYM2 draw (rho 0.6, sd 0.7); the default surrogate (``sg.train(sg.BYM2(), domain)``: latent auto, its
  conditioned linear path) against the exact sparse BYM2, both through ``sg.fit``;
* ``gp``: N random sites, counts (10 expected) at half of them from an exact Matern-3/2 GP draw (lengthscale 10%
  of the extent, sd 0.8), the rest predicted; lengthscale prior Uniform(5%, 30% of the extent); the surrogate
  against the HSGP (``areas_hsgp.stan``, its default basis) and, where it is feasible, the exact GP;
* ``agg``: an aggregated GP (aggVAE: the GP averaged over a fine grid's points in each area) on a Voronoi map.

Each (part, N) runs in a process of its own (its peak RSS is its own) and records: seconds for the domain,
training, check, export, data transfer plus compilation lookup and sampling; K, the decoder's stored numbers
and MB (compact, and as Python's float64 JSON would write them), microseconds per gradient, ESS/s of eta
(min bulk ESS over the areas / wall seconds of sampling), peak RSS, output MB; the check's covariance error
against its linear and sampling floors; RMSE and 90% coverage against the truth; against the exact model
median and max |delta eta|. Results merge into docs/bench_scale.json; ``--part plot`` draws
docs/figures/bench_scale.png and fits the slope of cost against N.

    python scripts/bench_scale.py --part bym2 --sizes 100,300,1000,2000
    python scripts/bench_scale.py --part gp --sizes 1000,2000,5000
    python scripts/bench_scale.py --part gp --sizes 100,200,400 --exact
    python scripts/bench_scale.py --part agg --sizes 1000
    python scripts/bench_scale.py --part plot
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "bench_scale.json"
WORK = ROOT / "bench_out" / "scale"
SEED = 1


def outline():
    """North Carolina's mainland (the largest polygon of the union of libpysal's sids2 counties)."""
    import geopandas as gpd
    import libpysal

    union = gpd.read_file(libpysal.examples.get_path("sids2.shp")).geometry.union_all()
    return max(getattr(union, "geoms", [union]), key=lambda g: g.area)


def points_inside(shape, n: int, seed: int) -> np.ndarray:
    import shapely

    rng = np.random.default_rng(seed)
    lo, hi = np.array(shape.bounds[:2]), np.array(shape.bounds[2:])
    pts = np.empty((0, 2))
    while len(pts) < n:
        cand = rng.uniform(lo, hi, size=(4 * n, 2))
        pts = np.vstack([pts, cand[shapely.contains_xy(shape, cand[:, 0], cand[:, 1])]])
    return pts[:n]


def voronoi_in(shape, n: int, seed: int):
    """A GeoDataFrame of the Voronoi cells of n random points inside ``shape``, clipped to it (ids A0001...)."""
    import geopandas as gpd
    import shapely

    pts = points_inside(shape, n, seed)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=shape))
    tree = shapely.STRtree(cells)  # each point's own cell, in the points' order
    own = [cells[next(i for i in tree.query(shapely.points(p)) if cells[i].contains(shapely.points(p)))] for p in pts]
    clipped = [c.intersection(shape) for c in own]
    return gpd.GeoDataFrame({"id": [f"A{i + 1:04d}" for i in range(n)]}, geometry=clipped)


def peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its children (the engine's chains), MB."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def decoder_figures(path: Path, run_dir: Path) -> dict:
    """The export's size beside what Python's float64 JSON of the same decoder (from the checkpoint) would be."""
    from surrogate.decoder.io import load_decoder, to_json_data
    from surrogate.nn.checkpoint import load_model
    from surrogate.nn.export import decoder_stan_data

    data, _ = load_decoder(path)
    numbers = int(sum(np.asarray(v).size for v in data.values() if isinstance(v, np.ndarray)))
    model, config, _ = load_model(run_dir)
    dense = len(json.dumps(to_json_data(decoder_stan_data(model, config.activation, config.resolved_output_activation))))
    return {"K": int(data["K"]), "stored_numbers": numbers, "decoder_mb": path.stat().st_size / 1e6, "float64_json_mb": dense / 1e6,
            "path_nnz": int(data["lin_nnz"])}  # fmt: skip


def check_figures(check) -> dict:
    rows = check.to_dict()["checks"]
    keep = ("cov_error", "cov_error_linear", "cov_error_floor", "variance_ratio_min", "variance_ratio_median", "mmd_p_value")
    return {"passed": bool(check.passed), "rows": [{k: r.get(k) for k in ("value", *keep) if k in r} for r in rows],
            "worst_cov_error": max(r["cov_error"] for r in rows), "worst_linear_floor": max(r["cov_error_linear"] for r in rows),
            "worst_sampling_floor": max(r["cov_error_floor"] for r in rows)}  # fmt: skip


def fit_figures(fit, seconds: float, out: Path) -> dict:
    d = fit.diagnostics
    keep = ("model", "max_rhat", "min_ess_bulk_eta", "ess_per_s", "ess_per_sampling_s", "wall_s", "compile_s", "sampling_s", "us_per_gradient",
            "divergences", "max_treedepth_hits", "rmse", "coverage90", "elpd_loo", "hsgp_basis", "chains", "draws", "gradients",
            "gradients_per_ess")  # fmt: skip
    rec = {k: d[k] for k in keep if k in d}
    rec["call_s"] = seconds
    rec["adapt_delta"] = float(fit.idata.attrs.get("sampler_adapt_delta", "nan"))  # a CVAE surrogate's default is 0.9 since bench_divergences
    rec["transfer_and_lookup_s"] = d.get("compile_s")  # the engine's build: program lookup (cached) and the data's transfer
    rec["output_mb"] = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6 if out.is_dir() else None
    rec["posterior_nc_mb"] = (out / "posterior.nc").stat().st_size / 1e6 if (out / "posterior.nc").is_file() else None
    return rec


def agreement(a, b) -> dict:
    ea, eb = a.idata.posterior["eta"], b.idata.posterior["eta"]
    diff = np.abs(ea.mean(("chain", "draw")).values - eb.mean(("chain", "draw")).values)
    ratio = ea.std(("chain", "draw")).values / eb.std(("chain", "draw")).values
    return {"median_abs_delta_eta": float(np.median(diff)), "max_abs_delta_eta": float(diff.max()), "sd_ratio_median": float(np.median(ratio)),
            "sd_ratio_min": float(ratio.min()), "sd_ratio_max": float(ratio.max())}  # fmt: skip


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0


def surrogate_pipeline(prior, domain, folder: Path, rec: dict, check_draws: int) -> object:
    """Train (latent auto), check, export; the timings and figures into ``rec``; the Surrogate."""
    import surrogate as sg

    s, rec["train_s"] = timed(sg.train, prior, domain, out=folder / "run", force=True, log=lambda m: None)
    rec["latent"] = s.latent
    check, rec["check_s"] = timed(s.check, draws=check_draws)
    rec["check"] = check_figures(check)
    path, rec["export_s"] = timed(s.export)
    rec["decoder"] = decoder_figures(Path(path), folder / "run")
    return s


def run_bym2(n: int, args) -> dict:
    import surrogate as sg
    from surrogate.spatial.priors import SpatialPrior
    from surrogate.spatial.simulate import simulate_counts

    folder = WORK / f"bym2-{n}"
    rec = {"part": "bym2", "N": n}
    gdf, rec["map_s"] = timed(voronoi_in, outline(), n, SEED)
    domain, rec["domain_s"] = timed(sg.Domain.from_map, gdf, id="id")
    rec["edges"] = int(len(domain.edges)) if getattr(domain, "edges", None) is not None else None
    sim = simulate_counts(domain, SpatialPrior("bym2", domain, condition=(0.0, 1.0)), 0.6, 0.7, 0.0, 0.3, 10.0, seed=SEED)
    import pandas as pd

    table = pd.DataFrame({k: sim[k] for k in ("id", "cases", "expected", "x")})
    models = [m for m in args.bym2_models.split(",") if m]
    s = surrogate_pipeline(sg.BYM2(), domain, folder, rec, args.check_draws) if "surrogate" in models else None
    sampler = {"chains": 4, "warmup": args.warmup, "draws": args.draws, "seed": SEED}
    rec["sampler"] = sampler
    short = [int(v) for v in args.surrogate_sampler.split(",")] if args.surrogate_sampler else None
    fits = {}
    for name, prior in [(m, p) for m, p in (("surrogate", s), ("exact", "bym2")) if m in models]:
        out = folder / f"fit-{name}"
        settings = sampler | ({"chains": short[0], "warmup": short[1], "draws": short[2]} if short and name == "surrogate" else {})
        fits[name], seconds = timed(sg.fit, "cases ~ x + offset(log(expected))", table, domain, prior=prior, truth=sim["eta_true"], out=out,
                                    **settings)  # fmt: skip
        rec[name] = fit_figures(fits[name], seconds, out) | {"sampler": settings} | ({"short_run": True} if short and name == "surrogate" else {})
    if len(fits) < 2:
        return rec
    rec["agreement"] = agreement(fits["surrogate"], fits["exact"])
    if not short:  # a short surrogate run measures its cost per gradient, not its ESS/s
        rec["ess_ratio_surrogate_to_exact"] = rec["surrogate"]["ess_per_s"] / rec["exact"]["ess_per_s"]
    return rec


def gp_data(n: int):
    import pandas as pd

    import surrogate as sg
    from surrogate.spatial.priors import SpatialPrior
    from surrogate.spatial.simulate import simulate_counts

    pts = points_inside(outline(), n, SEED)
    sites = pd.DataFrame({"id": [f"S{i + 1:04d}" for i in range(n)], "x": pts[:, 0], "y": pts[:, 1]})
    domain = sg.Domain.from_points(sites)
    ext = domain.extent
    sim = simulate_counts(domain, SpatialPrior("gp", domain, "matern32", (0.1 * ext, 0.1 * ext)), 0.1 * ext, 0.8, 0.0, 0.0, 10.0, seed=SEED)
    table = pd.DataFrame({k: sim[k] for k in ("id", "cases", "expected")})
    observed = np.random.default_rng(SEED).permutation(n)[: n // 2]
    table["cases"] = table["cases"].astype(float)
    table.loc[~table.index.isin(observed), "cases"] = np.nan  # predicted
    return domain, table, sim["eta_true"], (0.05 * ext, 0.3 * ext)


def run_gp(n: int, args) -> dict:
    import surrogate as sg

    folder = WORK / f"gp-{n}"
    rec = {"part": "gp", "N": n}
    (domain, table, truth, lengthscale), rec["domain_s"] = timed(gp_data, n)
    rec["lengthscale_prior"], rec["observed"] = list(lengthscale), int(table["cases"].notna().sum())
    formula = "cases ~ offset(log(expected))"
    fits = {}
    models = [m for m in args.models.split(",") if m]
    for name in models:
        sampler = {"chains": 4, "warmup": args.warmup, "draws": args.draws, "seed": SEED}
        if name == "surrogate":
            prior = surrogate_pipeline(sg.GP("matern32", lengthscale), domain, folder, rec, args.check_draws)
        else:
            prior = sg.GP("matern32", lengthscale) if name == "exact" else sg.HSGP("matern32", lengthscale, m=args.hsgp_m or None)
            if name == "hsgp" and args.hsgp_warmup:
                sampler |= {"warmup": args.hsgp_warmup, "draws": args.hsgp_draws}
            if name == "exact" and args.exact_warmup:
                sampler |= {"chains": 2, "warmup": args.exact_warmup, "draws": args.exact_draws}
        out = folder / f"fit-{name}"
        fits[name], seconds = timed(sg.fit, formula, table, domain, prior=prior, truth=truth, out=out, **sampler)
        rec[name] = fit_figures(fits[name], seconds, out) | {"sampler": sampler}
    for a, b in (("surrogate", "exact"), ("hsgp", "exact"), ("surrogate", "hsgp")):
        if a in fits and b in fits:
            rec[f"agreement_{a}_{b}"] = agreement(fits[a], fits[b])
    if "surrogate" in fits and "hsgp" in fits:
        rec["ess_ratio_surrogate_to_hsgp"] = rec["surrogate"]["ess_per_s"] / rec["hsgp"]["ess_per_s"]
    return rec


def run_agg(n: int, args) -> dict:
    import pandas as pd

    import surrogate as sg
    from surrogate.spatial.simulate import simulate_counts

    folder = WORK / f"agg-{n}"
    rec = {"part": "agg", "N": n, "agg_grid": args.agg_grid}
    gdf, rec["map_s"] = timed(voronoi_in, outline(), n, SEED)
    domain, rec["domain_s"] = timed(sg.Domain.from_map, gdf, id="id")
    ext = domain.extent
    lengthscale = (0.05 * ext, 0.3 * ext)
    prior = sg.AggGP("matern32", lengthscale, grid=args.agg_grid)
    bound = prior.on(domain)
    rec["fine_points"] = int(bound.aggregation[0].shape[0])
    sim = simulate_counts(domain, bound, 0.1 * ext, 0.8, 0.0, 0.3, 10.0, seed=SEED)
    table = pd.DataFrame({k: sim[k] for k in ("id", "cases", "expected", "x")})
    s = surrogate_pipeline(prior, domain, folder, rec, args.check_draws)
    sampler = {"chains": 4, "warmup": args.warmup, "draws": args.draws, "seed": SEED}
    out = folder / "fit-surrogate"
    fit, seconds = timed(sg.fit, "cases ~ x + offset(log(expected))", table, domain, prior=s, truth=sim["eta_true"], out=out, **sampler)
    rec["surrogate"] = fit_figures(fit, seconds, out) | {"sampler": sampler}
    return rec


PARTS = {"bym2": run_bym2, "gp": run_gp, "agg": run_agg}


def merge(rec: dict, key: str) -> None:
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results[key] = rec
    from surrogate.fileio import write_json

    write_json(OUT, results)


def slope(ns, ys) -> float:
    ns, ys = np.log(np.asarray(ns, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(ns, ys, 1)[0]) if len(ns) >= 2 else float("nan")


def plot() -> None:
    from surrogate.fileio import pyplot, save_figure, write_json

    results = json.loads(OUT.read_text())
    plt = pyplot()
    panels = [("bym2", ("surrogate", "exact")), ("gp", ("surrogate", "hsgp", "exact")), ("agg", ("surrogate",))]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    slopes = {}
    for ax, (part, models) in zip(axes, panels):
        recs = sorted((r for k, r in results.items() if isinstance(r, dict) and r.get("part") == part and "short" not in k), key=lambda r: r["N"])
        for model in models:
            for metric, style in (("us_per_gradient", "o-"), ("ess_per_s", "s--")):
                pts = [(r["N"], r[model][metric]) for r in recs
                       if model in r and r[model].get(metric) and not (metric == "ess_per_s" and r[model].get("short_run"))]
                if not pts:
                    continue
                ax.loglog(*zip(*pts), style, label=f"{model}: {metric.replace('_', ' ')}")
                if len(pts) >= 2:
                    slopes[f"{part}/{model}/{metric}"] = slope(*zip(*pts))
        ax.set_title(part)
        ax.set_xlabel("locations N")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, ROOT / "docs" / "figures" / "bench_scale.png")
    results["slopes"] = slopes
    write_json(OUT, results)
    print(json.dumps(slopes, indent=1))


def table() -> str:
    """docs/benchmarks.md's tables: one row per (part, N, model)."""
    results = json.loads(OUT.read_text())
    head = ("| part | N | model | K | decoder MB (float64 JSON) | train s | check (err / linear / sampling floor) | us/grad | grads/ESS "
            "| ESS/s | R-hat | div | RMSE | cover90 | \\|d eta\\| med / max | peak RSS GB | posterior MB |")
    lines = [head, "|" + "|".join(["---"] * len(head.strip("| ").split(" | "))) + "|"]
    for key, r in sorted(((k, v) for k, v in results.items() if isinstance(v, dict) and "part" in v and "short" not in k),
                         key=lambda kv: (kv[1]["part"], kv[1]["N"], kv[0])):  # fmt: skip
        for model in ("surrogate", "exact", "hsgp"):
            if model not in r:
                continue
            f = r[model]
            if "us_per_gradient" not in f:  # stopped before it finished
                lines.append(f"| {r['part']} | {r['N']:,} | {model} (m={f['hsgp_basis']['m']}) | not finished after {f['not_finished_after_s']:,} s "
                             f"(4 x (500 + 500)): ESS/s < {f['ess_per_s_upper_bound']:.2f} |" + " |" * 12)  # fmt: skip
                continue
            dec, chk = r.get("decoder", {}), r.get("check", {})
            agree = r.get("agreement") if model == "surrogate" else None
            agree = agree or r.get(f"agreement_{model}_exact") or r.get("agreement_surrogate_hsgp" if model == "hsgp" else "")
            gpe = f.get("gradients_per_ess") or float("nan")
            name = model + (f" (m={f['hsgp_basis']['m']})" if model == "hsgp" and f.get("hsgp_basis") else "")
            if f.get("short_run"):  # its cost per gradient; ESS/s of a short run is not comparable
                s = f["sampler"]
                name += f" ({s['chains']} x ({s['warmup']} + {s['draws']}): cost only)"
            lines.append("| " + " | ".join([
                r["part"], f"{r['N']:,}", name,
                str(dec.get("K", "")) if model == "surrogate" else "",
                f"{dec['decoder_mb']:.1f} ({dec['float64_json_mb']:.1f})" if model == "surrogate" and dec else "",
                f"{r['train_s']:.0f}" if model == "surrogate" and "train_s" in r else "",
                (f"{chk['worst_cov_error']:.3f} / {chk['worst_linear_floor']:.3f} / {chk['worst_sampling_floor']:.3f}"
                 + ("" if chk["passed"] else " FAIL")) if model == "surrogate" and chk else "",
                f"{f['us_per_gradient']:.0f}", f"{gpe:.0f}", f"{f['ess_per_s']:.2f}", f"{f['max_rhat']:.3f}", str(f["divergences"]),
                f"{f['rmse']:.3f}" if "rmse" in f else "", f"{f['coverage90']:.3f}" if "coverage90" in f else "",
                f"{agree['median_abs_delta_eta']:.3f} / {agree['max_abs_delta_eta']:.3f}" if agree else "",
                f"{max(r['peak_rss_mb'].values()) / 1024:.1f}", f"{f['posterior_nc_mb']:.0f}" if f.get("posterior_nc_mb") else "",
            ]) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "plot", "table"], required=True)
    parser.add_argument("--sizes", default="")
    parser.add_argument("--one", type=int, default=None, help="(internal) run one size in this process")
    parser.add_argument("--models", default="surrogate,hsgp", help="gp: surrogate, hsgp, exact")
    parser.add_argument("--exact", action="store_true", help="gp: also the exact GP (2 chains, --exact-warmup/--exact-draws)")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--hsgp-m", type=int, default=0, help="gp: the HSGP's basis functions per dimension (0: its default rule)")
    parser.add_argument("--hsgp-warmup", type=int, default=0)
    parser.add_argument("--hsgp-draws", type=int, default=0)
    parser.add_argument("--exact-warmup", type=int, default=300)
    parser.add_argument("--exact-draws", type=int, default=300)
    parser.add_argument("--check-draws", type=int, default=2000)
    parser.add_argument("--agg-grid", type=int, default=100)
    parser.add_argument("--tag", default="")
    parser.add_argument("--bym2-models", default="surrogate,exact", help="bym2: the fits to run (surrogate, exact)")
    parser.add_argument("--surrogate-sampler", default="", help="bym2: CHAINS,WARMUP,DRAWS of a short surrogate fit (its cost per gradient)")
    args = parser.parse_args()
    if args.part == "plot":
        return plot()
    if args.part == "table":
        return print(table())
    if args.exact and "exact" not in args.models:
        args.models += ",exact"
    if args.one is not None:
        WORK.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rec = PARTS[args.part](args.one, args)
        rec["total_s"] = time.perf_counter() - t0
        rec["peak_rss_mb"] = peak_rss_mb()
        rec["settings"] = {k: v for k, v in vars(args).items() if k not in ("one", "sizes")}
        import platform

        rec["machine"] = {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}
        merge(rec, f"{args.part}-{args.one}{args.tag}")
        print(json.dumps(rec, indent=1, default=str))
        return
    for n in [int(v) for v in args.sizes.split(",") if v]:
        argv = sys.argv[1:]
        rest = [a for i, a in enumerate(argv) if not (a.startswith("--sizes") or (i and argv[i - 1] == "--sizes"))]
        cmd = [sys.executable, __file__, *rest, "--one", str(n)]
        print(f"--- {args.part} N={n}", flush=True)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
