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


def to_inference_data(fit, coords=None, dims=None, observed_data=None, constant_data=None, attrs=None, log_likelihood=None):
    """ArviZ InferenceData with named dims; zero-size variables (e.g. no classes) are left out.

    ``log_likelihood`` names pointwise log-likelihood variables moved to their own group (for LOO).
    """
    az = import_arviz()
    posterior = {k: v for k, v in fit.draws.items() if v.size}
    log_lik = {k: posterior.pop(k) for k in (log_likelihood or []) if k in posterior}
    attrs = {**(attrs or {}), **{f"sampler_{k}": str(v) for k, v in asdict(fit.settings).items() if k != "init"},
             **{k: str(v) for k, v in fit.versions.items()}}  # fmt: skip
    used = set(posterior) | set(log_lik) | set(observed_data or {}) | set(constant_data or {})
    dims = {k: v for k, v in (dims or {}).items() if k in used}
    return az.from_dict(
        posterior=posterior,
        sample_stats=fit.stats,
        log_likelihood=log_lik or None,
        observed_data=observed_data,
        constant_data=constant_data,
        coords=coords,
        dims=dims,
        attrs=attrs,
    )
