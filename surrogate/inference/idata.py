"""A :class:`~surrogate.inference.fit.StanFit` as ArviZ InferenceData with named dims."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict


def import_arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz 0.2x announces its refactor on import
        import arviz

    return arviz


@contextlib.contextmanager
def arviz_plotting():
    """Around ArviZ's plots: silence matplotlib 3.11's deprecation of the call ArviZ 0.2x makes on each plot."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")
        yield


def to_inference_data(fit, coords=None, dims=None, observed_data=None, constant_data=None, attrs=None, log_likelihood=None,
                      keep_totals: bool = False):
    """ArviZ InferenceData with named dims; zero-size variables (e.g. no classes) are left out.

    ``log_likelihood`` names pointwise log-likelihood variables moved to their own group (for LOO);
    with ``keep_totals`` the posterior keeps each one's sum over its last axis under the same name
    (the whole log-likelihood of a draw, for convergence checks and per-chain comparisons).
    """
    az = import_arviz()
    posterior = {k: v for k, v in fit.draws.items() if v.size or k in (log_likelihood or [])}
    log_lik = {k: posterior.pop(k) for k in (log_likelihood or []) if k in posterior}
    if keep_totals:
        posterior |= {k: v.sum(axis=-1) for k, v in log_lik.items()}
    log_lik = {k: v for k, v in log_lik.items() if v.size}
    attrs = {**(attrs or {}), **{f"sampler_{k}": str(v) for k, v in asdict(fit.settings).items() if k != "init"},
             **{k: str(v) for k, v in fit.versions.items()}}  # fmt: skip
    used = set(posterior) | set(log_lik) | set(observed_data or {}) | set(constant_data or {})
    dims = {k: v for k, v in (dims or {}).items() if k in used}
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=fit.stats,
        log_likelihood=None if keep_totals else log_lik or None,
        observed_data=observed_data,
        constant_data=constant_data,
        coords=coords,
        dims={k: v for k, v in dims.items() if not (keep_totals and k in log_lik)},
        attrs=attrs,
    )
    if keep_totals and log_lik:  # the totals share the pointwise values' names, so their dims go in a group of its own
        idata.extend(az.from_dict(log_likelihood=log_lik, coords=coords, dims={k: dims[k] for k in log_lik if k in dims}))
    return idata
