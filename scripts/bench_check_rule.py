"""How often the prior check passes an exact sampler where sampling noise exceeds the limit: 40 exact BYM2 samples of 2,000
draws on NC (rook) and a 300-area Voronoi map; the first 20 taken as "decoders" against the other 20 as sampling floors,
under the old rule (no worse than one exact sample) and the current one (within 5% of the noise floor). Prints a line per
map and rho (docs/benchmarks.md, "The prior check's rule").

    python scripts/bench_check_rule.py
"""

import numpy as np
import torch
from libpysal import examples

import surrogate as sg
from surrogate.spatial.simulate import voronoi_map
from surrogate.tasks.gp_check import covariance_error

doms = {"nc100": sg.Domain.from_map(examples.get_path("sids2.shp"), id="FIPS", contiguity="rook"), "v300": sg.Domain.from_map(voronoi_map(300, seed=3), id="id")}
for name, d in doms.items():
    p = sg.BYM2().on(d)
    for rho in (0.1, 0.5, 0.9):
        C = p.covariance(rho)
        errs = np.array([covariance_error(p.sample(2000, torch.Generator().manual_seed(s), value=rho)[0].double().numpy(), C) for s in range(40)])
        a, b = errs[:20], errs[20:]
        print(name, rho, "mean", errs.mean().round(4), "rel sd", (errs.std() / errs.mean()).round(4), "old rule pass rate for an exact 'decoder'", np.mean(a <= np.maximum(0.2, b)), "current", np.mean(a <= np.maximum(0.2, 1.05 * b)))
