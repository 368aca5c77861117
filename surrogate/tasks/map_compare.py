"""Comparing two map fits (a surrogate and its exact counterpart), and scoring a later period.

:func:`agreement` compares the posteriors of the log relative risk ``eta`` area by area: the
absolute difference of the posterior means (max and median), the ratio of posterior sds, and the
overlap of the 90% intervals, ``|A ∩ B| / max(|A|, |B|)`` (1: the same interval; the share of areas
where it is at least 0.8 is reported), plus whether the covariate effects' 90% intervals overlap.

:func:`predictive_log_score` scores new counts ``y`` with exposures ``E`` (e.g. a later period)
under the fitted relative risks: per area ``log mean_s Poisson(y | E rr_s)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

INTERVAL = 0.9
OVERLAP = 0.8


def _draws(idata, name: str) -> np.ndarray:
    v = idata.posterior[name].values
    return v.reshape(-1, *v.shape[2:])


def interval_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: ``|A ∩ B| / max(|A|, |B|)`` of the central 90% intervals of draws ``a`` and ``b``."""
    q = [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2]
    (la, ha), (lb, hb) = np.quantile(a, q, axis=0), np.quantile(b, q, axis=0)
    inter = np.clip(np.minimum(ha, hb) - np.maximum(la, lb), 0, None)
    return inter / np.maximum(ha - la, hb - lb)


def agreement(candidate, reference) -> dict:
    """How closely ``candidate``'s posterior (InferenceData) follows ``reference``'s on the same areas."""
    ea, eb = _draws(candidate, "eta"), _draws(reference, "eta")
    if ea.shape[1] != eb.shape[1]:
        raise ValueError(f"the fits cover {ea.shape[1]} and {eb.shape[1]} areas")
    diff = np.abs(ea.mean(0) - eb.mean(0))
    overlap = interval_overlap(ea, eb)
    result = {"max_abs_diff_eta": float(diff.max()), "median_abs_diff_eta": float(np.median(diff)),
              "sd_ratio_median": float(np.median(ea.std(0) / eb.std(0))), "interval_overlap_median": float(np.median(overlap)),
              "share_overlap_ge_0.8": float(np.mean(overlap >= OVERLAP))}  # fmt: skip
    if "beta_original" in candidate.posterior and "beta_original" in reference.posterior:
        q = [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2]
        ba, bb = _draws(candidate, "beta_original"), _draws(reference, "beta_original")
        (la, ha), (lb, hb) = np.quantile(ba, q, axis=0), np.quantile(bb, q, axis=0)
        result["covariate_intervals_overlap"] = bool(np.all((la <= hb) & (lb <= ha)))
        result["covariate_overlap"] = interval_overlap(ba, bb).tolist()
    return result


def predictive_log_score(idata, counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per area: ``log mean_s Poisson(counts | expected * rr_s)`` over the posterior draws."""
    rr = _draws(idata, "rr")
    mu = expected[None, :] * rr
    logp = counts[None, :] * np.log(mu) - mu - gammaln(counts + 1)[None, :]
    return logsumexp(logp, axis=0) - np.log(len(rr))
