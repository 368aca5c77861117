"""A real disease map end to end: North Carolina SIDS 1974-78, surrogates vs the exact Stan models.

Trains the surrogates for the map (a BYM2 VAE, a CAR CVAE over alpha, a GP CVAE over the
lengthscale), checks their priors, fits them and the exact BYM2, ICAR, CAR and GP models
(4 chains each), writes each fit's maps and report, and prints a comparison table. Everything
goes through the library's commands' functions (``surrogate train / check-prior / export /
fit / report``); nothing here is specific to this map but the column names.

    make demo-map                         # or: python scripts/demo_map.py --work runs/demo-map
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import bench_maps  # noqa: E402  (the study itself; this script picks the demo's sizes)


def table(result: dict) -> str:
    fits, agree = result["fits"], result["agreement"]
    lines = [f"{'model':<15} {'ESS/s':>7} {'wall s':>7} {'R-hat':>6} {'div':>4} {'elpd_loo':>9} {'k>0.7':>5} {'NWPROP per 0.1':>21} "
             f"{'log score 79':>12} {'|d eta| med/max':>16} {'overlap':>7}"]  # fmt: skip
    for key, f in fits.items():
        e = f["covariate_effects"][0]
        lo, hi = e["interval90"]
        a = agree.get(key)
        cmp = f"{a['median_abs_diff_eta']:.3f}/{a['max_abs_diff_eta']:.3f}" if a else "(exact)"
        share = f"{100 * a['share_overlap_ge_0.8']:.0f}%" if a else ""
        lines.append(f"{key:<15} {f['ess_per_s']:7.1f} {f['wall_s']:7.1f} {f['max_rhat']:6.3f} {f['divergences']:4d} {f['elpd_loo']:9.1f} "
                     f"{f['pareto_k_over_0.7']:5d} {0.1 * e['mean']:7.3f} ({0.1 * lo:.3f}, {0.1 * hi:.3f}) "
                     f"{f.get('log_score_1979', {}).get('sum', float('nan')):12.1f} {cmp:>16} {share:>7}")  # fmt: skip
    lines.append("ESS/s: min bulk ESS over the counties' log relative risks per second of wall time (training apart); NWPROP per 0.1: the "
                 "log relative risk per 10 points of non-white birth proportion (90% interval); log score 79: SID79 given BIR79, summed over "
                 "counties; |d eta|: posterior mean log relative risk against the exact model of the same prior; overlap: counties whose "
                 "90% intervals overlap by >= 80%")  # fmt: skip
    return "\n".join(lines)


def main(args) -> None:
    from surrogate.reports.fit import build_report

    t0 = time.perf_counter()
    bench = bench_maps.resolve(bench_maps.parser().parse_args(
        ["--maps", "nc", "--work", args.work, "--out", args.out, "--epochs", str(args.epochs), "--epoch-size", str(args.epoch_size),
         "--warmup", str(args.warmup), "--draws", str(args.draws), "--figures", args.figures]))  # fmt: skip
    result = bench_maps.main(bench)["maps"]["nc"]
    for fit_dir in sorted((Path(args.work) / "nc").glob("fit-*")):
        build_report(fit_dir)
    print(table(result))
    for key, a in result["agreement"].items():
        ok = a["median_abs_diff_eta"] <= 0.05 and a["max_abs_diff_eta"] <= 0.15
        print(f"{key}: {'agrees with' if ok else 'DIFFERS FROM'} its exact model (median |d eta| {a['median_abs_diff_eta']:.3f} <= 0.05, "
              f"max {a['max_abs_diff_eta']:.3f} <= 0.15: {'yes' if ok else 'no'}); covariate intervals overlap: {a['covariate_intervals_overlap']}")  # fmt: skip
    bad = [k for k, f in result["fits"].items() if f["max_rhat"] > 1.01 or f["divergences"]]
    if bad:
        print(f"chains that did not fully agree (R-hat > 1.01 or divergences): {', '.join(bad)}")
    print(f"maps and reports in {Path(args.work) / 'nc'}/fit-*/ (maps.png, report.html); {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/demo-map", help="folder for runs and fits")
    p.add_argument("--out", default="runs/demo-map/results.json", help="results JSON")
    p.add_argument("--figures", default="", help="copy each fit's maps.png here")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--epoch-size", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    main(p.parse_args())
