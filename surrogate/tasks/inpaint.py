"""Inpainting with a decoder prior: Stan's NUTS over the latent space of a trained (C)VAE.

Observed pixels enter a Gaussian likelihood around the decoded mean; the
missing ones are decoded in ``generated quantities``. See ``stan/inpaint.stan``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surrogate.decoder.io import load_decoder
from surrogate.decoder.schema import INPAINT_OBSERVATION_KEYS
from surrogate.errors import SurrogateError
from surrogate.fileio import pyplot, save_figure
from surrogate.inference import SamplerSettings, arviz_plotting, get_engine, to_inference_data
from surrogate.inference.diagnostics import assess, format_summary, import_arviz
from surrogate.inference.fitdir import FitResult, write_fit_dir

PROGRAM = "inpaint"


@dataclass
class Observation:
    """What to inpaint: values ``y`` [D] (the truth where known), the mask and the label."""

    y: np.ndarray
    missing: np.ndarray  # bool [D], True where the value is hidden from the model
    truth_known: bool
    label: int | None = None
    source: str = ""


def random_mask(d: int, missing: float, seed: int) -> np.ndarray:
    """Each position missing with probability ``missing``: ``default_rng(seed).random(d) < missing``."""
    if not 0 < missing < 1:
        raise SurrogateError(f"missing must be a fraction in (0, 1), found {missing}")
    return np.random.default_rng(seed).random(d) < missing


def read_array(path: str | Path, d: int, what: str) -> np.ndarray:
    """A ``.npy`` or ``.png`` (grayscale, scaled to [0, 1]) file as a flat float array of size ``d``."""
    path = Path(path)
    if not path.is_file():
        raise SurrogateError(f"{what} file {path} does not exist")
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False).astype(np.float64)
    elif path.suffix == ".png":
        from PIL import Image

        values = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0
    else:
        raise SurrogateError(f"{what} file must be .npy or .png, found {path.name}")
    if values.size != d:
        raise SurrogateError(f"{what} {path} has {values.size} values (shape {values.shape}), the decoder outputs {d}")
    return values.ravel()


def check_mask(missing: np.ndarray) -> None:
    if missing.all():
        raise SurrogateError("mask leaves no observed pixels: nothing to condition on")
    if not missing.any():
        raise SurrogateError("mask has no missing pixels: nothing to inpaint")


def stan_data(decoder: dict, obs: Observation, sigma: float | None, sigma_prior_scale: float = 1.0) -> dict:
    """The full data of ``inpaint.stan``: the decoder plus the observations.

    ``sigma=None`` estimates the noise sd with a half-normal(0, sigma_prior_scale) prior.
    """
    if obs.y.shape != (decoder["D"],) or obs.missing.shape != (decoder["D"],):
        raise SurrogateError(f"image and mask must have {decoder['D']} values, found {obs.y.size} and {obs.missing.size}")
    check_mask(obs.missing)
    if sigma is not None and not sigma > 0:
        raise SurrogateError(f"sigma must be positive, found {sigma}")
    if not sigma_prior_scale > 0:
        raise SurrogateError(f"sigma prior scale must be positive, found {sigma_prior_scale}")
    observed = np.flatnonzero(~obs.missing)
    return {**decoder, **observations(observed, obs.y[observed], sigma, sigma_prior_scale)}


def observations(observed: np.ndarray, y_obs: np.ndarray, sigma: float | None, sigma_prior_scale: float) -> dict:
    """The observation part of the data block (0-based ``observed`` positions become 1-based)."""
    return {
        "N_obs": int(observed.size),
        "obs_idx": (observed + 1).tolist(),
        "y_obs": np.asarray(y_obs, dtype=np.float64).tolist(),
        "estimate_sigma": int(sigma is None),
        "sigma_fixed": float(sigma) if sigma is not None else 1.0,
        "sigma_prior_scale": float(sigma_prior_scale),
    }


def run_inpaint(
    decoder_json: str | Path,
    obs: Observation,
    sigma: float | None = 0.1,
    settings: SamplerSettings | None = None,
    engine: str = "auto",
    out: str | Path | None = None,
    sigma_prior_scale: float = 1.0,
) -> FitResult:
    """Sample the inpainting posterior; write the outputs to ``out`` when given."""
    decoder, meta = load_decoder(decoder_json)
    settings = settings or SamplerSettings()
    data = stan_data(decoder, obs, sigma, sigma_prior_scale)
    fit = get_engine(engine).run(PROGRAM, data, settings)

    # --- InferenceData with named dims ---
    K, C, D = decoder["K"], decoder["C"], decoder["D"]
    classes = meta.get("classes") or [str(c) for c in range(C)]
    observed, mis = np.flatnonzero(~obs.missing), np.flatnonzero(obs.missing)
    coords = {
        "param": [f"z{k + 1}" for k in range(K)] + [f"logit_{c}" for c in classes],
        "latent": np.arange(K), "class": classes, "pixel": np.arange(D),
        "missing_pixel": mis, "observed_pixel": observed,
    }  # fmt: skip
    dims = {"theta": ["param"], "z": ["latent"], "class_probs": ["class"], "y_hat": ["pixel"],
            "y_mis": ["missing_pixel"], "y_obs": ["observed_pixel"], "log_lik": ["observed_pixel"], "missing": ["pixel"], "y_true": ["pixel"]}  # fmt: skip
    constant = {"missing": obs.missing}
    if obs.truth_known:
        constant["y_true"] = obs.y
    attrs = {"program": f"{PROGRAM}.stan", "source": obs.source, "sigma": "estimated" if sigma is None else sigma,
             "decoder": str(decoder_json), "decoder_sha256": meta.get("weights_sha256", "")}  # fmt: skip
    if meta.get("image_shape"):
        attrs["image_shape"] = json.dumps(meta["image_shape"])
    idata = to_inference_data(fit, coords, dims, {"y_obs": obs.y[observed]}, constant, attrs, log_likelihood=["log_lik"], keep_totals=True)

    truth = obs.y if obs.truth_known else None
    result = assess(idata, fit.sampler_problems(), truth, obs.missing, classes)
    result.update(engine=fit.engine, timing=fit.timing, label=obs.label, source=obs.source)
    fit_result = FitResult("inpaint", idata, result, format_summary(result))
    if out is not None:
        write_outputs(Path(out), fit_result, obs, meta, data, fit.log)
    return fit_result


# ----------------------------------------------------------------------------
# outputs


def write_outputs(out: Path, result: FitResult, obs: Observation, meta: dict, data: dict, log: str = "") -> None:
    az = import_arviz()
    idata = result.idata
    names = ["theta", "class_probs", "log_lik", "y_mis"] + (["sigma"] if data["estimate_sigma"] else [])
    summary = az.summary(idata, var_names=[n for n in names if n in idata.posterior])
    observations = {k: data[k] for k in INPAINT_OBSERVATION_KEYS}
    write_fit_dir(out, result, summary, log, {"observations.json": observations})
    shape = tuple(meta.get("image_shape") or ())
    if len(shape) == 2:
        plot_inpainting(out / "inpaint.png", idata, obs, shape, result.diagnostics["chains_disagree"])
    if "class_probs" in idata.posterior:
        plot_class_probs(out / "class_probs.png", idata)
    plot_chains(out, idata)


def plot_inpainting(path: Path, idata, obs: Observation, shape, by_chain: bool) -> None:
    """Masked input | posterior mean (observed kept) | posterior sd of missing | truth; a row per chain if they disagree."""
    y_mis = idata.posterior["y_mis"]
    groups = [(f"chain {c + 1}", y_mis[c : c + 1]) for c in range(y_mis.sizes["chain"])] if by_chain else [("all chains", y_mis)]
    rows = [(name, d.mean(("chain", "draw")).values, d.std(("chain", "draw")).values) for name, d in groups]
    plot_imputations(path, obs, shape, rows)


def plot_imputations(path: Path, obs: Observation, shape, rows: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """One row per (name, mean of the missing values, their sd): input | mean | sd | truth."""
    plt = pyplot()
    masked = np.repeat(np.clip(obs.y, 0, 1)[:, None], 3, axis=1) * 0.85
    masked[obs.missing] = (0.15, 0.35, 0.85)  # missing pixels in blue
    ncol = 4 if obs.truth_known else 3
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.4 * ncol, 2.4 * len(rows)), squeeze=False)
    for row, (name, mis_mean, mis_sd) in enumerate(rows):
        mean = obs.y.copy()
        mean[obs.missing] = mis_mean
        sd = np.zeros_like(obs.y)
        sd[obs.missing] = mis_sd
        panels = [(masked.reshape(*shape, 3), "input (missing in blue)", None), (mean.reshape(shape), f"posterior mean ({name})", "gray"),
                  (sd.reshape(shape), "posterior sd (missing)", "magma")]  # fmt: skip
        if obs.truth_known:
            panels.append((obs.y.reshape(shape), "truth", "gray"))
        for ax, (img, title, cmap) in zip(axes[row], panels):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=None if cmap == "magma" else 1)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)


def plot_class_probs(path: Path, idata) -> None:
    plt = pyplot()

    probs = idata.posterior["class_probs"]
    classes = [str(c) for c in probs["class"].values]
    n_chains = probs.sizes["chain"]
    x = np.arange(len(classes))
    width = 0.8 / (n_chains + 1)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(x - 0.4 + width / 2, probs.mean(("chain", "draw")).values, width, color="black", label="pooled")
    for c in range(n_chains):
        ax.bar(x - 0.4 + width * (c + 1.5), probs[c].mean("draw").values, width, label=f"chain {c + 1}")
    ax.set_xticks(x, classes)
    ax.set_ylabel("posterior mean class weight")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=min(n_chains + 1, 5))
    fig.tight_layout()
    save_figure(fig, path)


@arviz_plotting()
def plot_chains(out: Path, idata) -> None:
    """Trace plot of z and the class weights, rank plots of the log-likelihood and class weights."""
    az = import_arviz()
    plt = pyplot()

    names = [v for v in ("z", "class_probs", "log_lik") if v in idata.posterior]
    axes = az.plot_trace(idata, var_names=names, compact=True, combined=False)
    save_figure(axes.ravel()[0].figure, out / "trace.png")
    if idata.posterior.sizes["chain"] > 1:
        rank_names = [v for v in ("log_lik", "class_probs") if v in idata.posterior]
        axes = az.plot_rank(idata, var_names=rank_names, kind="vlines")
        save_figure(np.ravel(axes)[0].figure, out / "rank.png")
    plt.close("all")


# ----------------------------------------------------------------------------
# inputs for the command line


def observation_from_mnist(dataset: str, split: str, index: int, missing: np.ndarray | None, data_dir=None) -> Observation:
    from surrogate.data import load_split

    x, y = load_split(dataset, split, data_dir=data_dir)
    if not 0 <= index < len(x):
        raise SurrogateError(f"mnist-index must be in 0..{len(x) - 1} for split {split}, found {index}")
    return Observation(x[index].astype(np.float64), missing, True, int(y[index]), f"{dataset} {split}[{index}]")
