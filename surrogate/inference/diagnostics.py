"""Convergence diagnostics in plain numbers, and chain disagreement (multimodality).

The inpainting posterior of a softmax-class CVAE is multimodal: each chain can
look perfect while chains sit in different modes. :func:`assess` therefore
reports per-chain results beside the pooled ones and flags disagreement, so a
pooled mean is never presented as if the chains had converged.
"""

from __future__ import annotations

import warnings

import numpy as np

from surrogate.inference.idata import import_arviz

RHAT_LIMIT = 1.01  # converged (Vehtari et al. 2021)
MODE_RHAT = 1.1  # chains in different places, not just short (Gelman & Rubin 1992)
DECISIVE = 0.5  # a chain's class weight above which its argmax class counts as its mode


def _extreme(dataset, reduce) -> float:
    values = [np.asarray(dataset[v]).ravel() for v in dataset.data_vars]
    values = np.concatenate(values) if values else np.array([np.nan])
    return float(reduce(values)) if np.isfinite(values).any() else float("nan")


def convergence(idata, var_names: list[str]) -> dict:
    """Max R-hat and min bulk/tail ESS over ``var_names`` (NaNs from constant values ignored)."""
    az = import_arviz()
    names = [v for v in var_names if v in idata.posterior]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(idata, var_names=names) if idata.posterior.sizes["chain"] > 1 else None
        bulk = az.ess(idata, var_names=names, method="bulk")
        tail = az.ess(idata, var_names=names, method="tail")
    return {
        "max_rhat": _extreme(rhat, np.nanmax) if rhat is not None else float("nan"),
        "min_ess_bulk": _extreme(bulk, np.nanmin),
        "min_ess_tail": _extreme(tail, np.nanmin),
        "rhat_by_var": {v: _extreme(rhat[[v]], np.nanmax) for v in names} if rhat is not None else {},
    }


def per_chain(idata, truth: np.ndarray | None, missing: np.ndarray, classes: list[str]) -> list[dict]:
    """Each chain's own summary: class weights, argmax class, mean log-likelihood, imputation RMSE."""
    post = idata.posterior
    rows = []
    for c in range(post.sizes["chain"]):
        row = {"chain": c + 1, "mean_log_lik": float(post["log_lik"][c].mean())}
        if "class_probs" in post:
            probs = post["class_probs"][c].mean("draw").values
            row["class_probs"] = probs.tolist()
            row["class"] = classes[int(np.argmax(probs))]
            row["class_prob"] = float(probs.max())
        if truth is not None:
            row["rmse_missing"] = rmse(post["y_mis"][c].mean("draw").values, truth[missing])
        rows.append(row)
    return rows


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def assess(idata, problems: dict, truth: np.ndarray | None, missing: np.ndarray, classes: list[str]) -> dict:
    """Everything the printed summary says, as a JSON-able dict (see the module docstring).

    Chains *disagree* (sit in different modes) when max R-hat exceeds 1.1 or
    when chains are decisive (class weight > 0.5) about different classes; a
    max R-hat in (1.01, 1.1] is reported as not yet converged.
    """
    post = idata.posterior
    conv = convergence(idata, ["theta", "class_probs", "y_mis", "log_lik"])
    chains = per_chain(idata, truth, missing, classes)
    n_chains = post.sizes["chain"]
    distinct = sorted({row["class"] for row in chains if row.get("class_prob", 0) > DECISIVE})
    disagree = n_chains > 1 and (conv["max_rhat"] > MODE_RHAT or len(distinct) > 1)
    result = {**conv, **problems, "n_chains": n_chains, "n_draws": post.sizes["draw"],
              "chains_disagree": bool(disagree), "chain_classes": distinct, "per_chain": chains}  # fmt: skip
    if "class_probs" in post:
        pooled = post["class_probs"].mean(("chain", "draw")).values
        result["pooled_class_probs"] = pooled.tolist()
        result["predicted_class"] = None if disagree else classes[int(np.argmax(pooled))]
    if truth is not None:
        result["rmse_missing_pooled"] = rmse(post["y_mis"].mean(("chain", "draw")).values, truth[missing])
    warnings_ = []
    if disagree:
        warnings_.append(
            f"chains disagree (max R-hat {conv['max_rhat']:.3f}"
            + (f"; chains settle on classes {', '.join(distinct)}" if len(distinct) > 1 else "")
            + "): the posterior is multimodal and each chain sits in one mode. Pooled means mix modes "
            "in arbitrary proportions and are not posterior estimates; read the per-chain results, or run "
            "--class-model partitioned, which samples this model one dominant-class region at a time and "
            "weighs the regions by their posterior mass."
        )
    elif n_chains > 1 and conv["max_rhat"] > RHAT_LIMIT:
        warnings_.append(
            f"max R-hat {conv['max_rhat']:.3f} > {RHAT_LIMIT}: the chains have not converged to one distribution; "
            "run more warmup and draws or more chains, and treat pooled estimates with care"
        )
    if n_chains == 1:
        warnings_.append("one chain cannot reveal other modes of this multimodal posterior; run 4 or more")
    if problems["divergences"]:
        warnings_.append(f"{problems['divergences']} divergent transitions (per chain {problems['divergences_per_chain']}): "
                         "raise --adapt-delta (e.g. 0.95) and check the results")  # fmt: skip
    if problems["treedepth_hits"]:
        warnings_.append(f"{problems['treedepth_hits']} transitions hit max tree depth: raise --max-treedepth")
    result["warnings"] = warnings_
    return result


def format_summary(result: dict) -> str:
    """The printed summary of :func:`assess`."""
    lines = []
    if "pooled_class_probs" in result:
        if result["predicted_class"] is not None:
            p = max(result["pooled_class_probs"])
            lines.append(f"predicted class     {result['predicted_class']} (posterior weight {p:.3f})")
        else:
            lines.append("predicted class     no consensus: chains disagree (see per chain)")
    if "rmse_missing_pooled" in result:
        tag = " (pooled over disagreeing chains)" if result["chains_disagree"] else ""
        lines.append(f"imputation RMSE     {result['rmse_missing_pooled']:.4f} on missing pixels{tag}")
    lines.append(f"max R-hat           {result['max_rhat']:.3f}")
    lines.append(f"min ESS bulk/tail   {result['min_ess_bulk']:.0f} / {result['min_ess_tail']:.0f}")
    lines.append(f"divergences         {result['divergences']}  (max tree depth hits {result['treedepth_hits']})")
    lines.append("per chain:")
    for row in result["per_chain"]:
        parts = [f"  chain {row['chain']}"]
        if "class" in row:
            parts.append(f"class {row['class']} ({row['class_prob']:.3f})")
        parts.append(f"mean log-lik {row['mean_log_lik']:.1f}")
        if "rmse_missing" in row:
            parts.append(f"RMSE {row['rmse_missing']:.4f}")
        lines.append("  ".join(parts))
    for w in result["warnings"]:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


RELIABILITY_BINS = (0.0, 0.5, 0.8, 0.95, 0.99, 1.0)


def reliability(probs, labels, bins=RELIABILITY_BINS) -> dict:
    """Calibration of class posteriors ``probs`` [N, C] against true ``labels`` [N].

    Per bin of the top-class probability: count, mean confidence and accuracy; overall
    accuracy, mean log score log p(true class), Brier score and the expected calibration
    error (count-weighted mean |confidence - accuracy|).
    """
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    conf, hit = probs.max(axis=1), probs.argmax(axis=1) == labels
    onehot = np.eye(probs.shape[1])[labels]
    edges = np.array(bins, dtype=float)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, len(edges) - 2)
    rows = [{"bin": [float(edges[b]), float(edges[b + 1])], "n": int((which == b).sum()), "mean_confidence": float(conf[which == b].mean()),
             "accuracy": float(hit[which == b].mean())} for b in range(len(edges) - 1) if (which == b).any()]  # fmt: skip
    p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-300, None)
    return {"n": int(len(labels)), "accuracy": float(hit.mean()), "mean_log_score": float(np.log(p_true).mean()),
            "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
            "ece": float(sum(r["n"] * abs(r["mean_confidence"] - r["accuracy"]) for r in rows) / len(labels)), "bins": rows}  # fmt: skip
