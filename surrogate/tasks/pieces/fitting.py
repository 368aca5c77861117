"""One NUTS fit per plausible piece, then the pieces combined by their masses (see the package docstring)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings, console, get_engine
from surrogate.inference.diagnostics import MODE_RHAT
from surrogate.inference.idata import import_arviz
from surrogate.tasks.inpaint import Observation
from surrogate.tasks.pieces.density import ONE_MODE_LOG_Z, SCREEN, Pieces, check_class_model
from surrogate.tasks.pieces.evidence import _laplace_evidence, _log_evidence, multistart_optima


@dataclass
class PerClassResult:
    class_probs: np.ndarray  # p(c | y): per-class p(class c | y); partitioned p(dominant class = c | y)
    chain_class_probs: np.ndarray  # [chain, class]: the same from each chain's draws alone (do the chains agree?)
    log_evidence: np.ndarray  # log p(y, piece c) (up to the uniform class prior's constant for per-class)
    pareto_k: np.ndarray
    y_mis_mean: np.ndarray  # mixture posterior mean of the missing values
    y_mis_sd: np.ndarray
    per_class: list[dict]  # each piece's own fit diagnostics (or its Laplace screen)
    draws: dict  # name -> (chain, draw, fitted piece, ...) arrays
    fitted: list[int]  # pieces that got a NUTS fit
    model: str = "per-class"
    class_weights: np.ndarray | None = None  # partitioned: posterior mean of the softmax class weights
    log: str = ""  # the engine messages of every piece's fit


@dataclass
class PieceFit:
    """What one piece adds to the combination: its evidence and, when it got a NUTS fit, its moments."""

    row: dict  # the piece's diagnostics (or its Laplace screen)
    log_z: float  # log p(y, piece)
    chain_log_z: np.ndarray  # [chain]: the same from each chain's draws alone
    pareto_k: float = float("nan")
    mean: np.ndarray | None = None  # E[y_mis | y, piece]
    second: np.ndarray | None = None  # E[y_mis^2 | y, piece]
    class_weights: np.ndarray | None = None  # E[class weights | y, piece]
    draws: dict | None = None  # the fit's draws
    log: str = ""


def screened_piece(c: int, laplace: float, chains: int) -> PieceFit:
    """A piece left out by the Laplace screen: its Laplace value stands in for its evidence."""
    row = {"class": c, "log_evidence": laplace, "laplace_log_evidence": laplace, "fitted": False}
    return PieceFit(row, laplace, np.full(chains, laplace))


def fit_piece(runner, pieces: Pieces, decoder: dict, obs: Observation, c: int, settings: SamplerSettings, starts: np.ndarray,
              laplace: float, n_importance: int) -> PieceFit:  # fmt: skip
    """Sample piece ``c`` with NUTS, estimate its mass by importance sampling, and its moments."""
    az = import_arviz()
    if not isinstance(settings.init, list):  # start each chain at one of the best optima, best first
        settings = replace(settings, init=[pieces.stan_init(starts[j]) for j in range(settings.chains)])
    fit = runner.run(*pieces.stan(decoder, obs, c), settings)
    phi = pieces.phi_draws(fit.draws)
    checked = {"phi": phi, "y_mis": fit.draws["y_mis"]}
    if pieces.model == "partitioned":
        checked["class_probs"] = fit.draws["class_probs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = az.convert_to_dataset(checked)
        rhat = float(np.nanmax(az.rhat(ds).to_array().values)) if phi.shape[0] > 1 else float("nan")
        ess = float(np.nanmin(az.ess(ds).to_array().values))
        bfmi = az.bfmi(fit.stats["energy"]) if "energy" in fit.stats else np.array([np.nan])
    lz, k, phi_is, log_w = _log_evidence(pieces, c, list(phi), n_importance, seed=settings.seed + c, return_draws=True)
    own_log_z = np.array([_log_evidence(pieces, c, phi[j], n_importance, seed=settings.seed + c)[0] for j in range(phi.shape[0])])
    # E[y_mis | y, c], E[y_mis^2 | y, c] and the mean class weights: where the chains share one mode, their
    # draws (less Monte Carlo error); where they sit in different modes, pooling them would weigh each mode
    # by its number of chains, so the importance draws, self-normalised, weigh the modes by mass instead
    one_mode = phi.shape[0] > 1 and rhat <= MODE_RHAT and np.ptp(own_log_z) <= ONE_MODE_LOG_Z
    if one_mode:
        decoded = fit.draws["y_mis"].reshape(-1, fit.draws["y_mis"].shape[-1])
        onehot = np.broadcast_to(np.eye(decoder["C"])[c], (len(decoded), decoder["C"]))
        class_w = fit.draws["class_probs"].reshape(-1, decoder["C"]) if pieces.model == "partitioned" else onehot
        w_is = np.full(len(decoded), 1 / len(decoded))
    else:
        w_is = np.exp(log_w - log_w.max())
        w_is /= w_is.sum()
        decoded, class_w = pieces.decode(phi_is, c)
    row = {"class": c, "log_evidence": lz, "laplace_log_evidence": laplace, "fitted": True, "pareto_k": k,
           "max_rhat": rhat, "min_ess_bulk": ess, "min_bfmi": float(np.nanmin(bfmi)),
           "imputation": "chains" if one_mode else "importance sampling",
           **fit.sampler_problems(), "sampling_s": float(max(fit.timing["sampling_s"]))}  # fmt: skip
    return PieceFit(row, lz, own_log_z, k, w_is @ decoded, w_is @ decoded**2, w_is @ class_w, fit.draws, f"# piece {c}\n{fit.log}")


def combine(fits: list[PieceFit], model: str) -> PerClassResult:
    """The pieces weighed by their masses: class posterior, mixture imputations, the fitted pieces' draws."""
    log_z = np.array([f.log_z for f in fits])
    probs = _normalize(log_z)
    chain_probs = _normalize(np.array([f.chain_log_z for f in fits]).T)
    fitted = [c for c, f in enumerate(fits) if f.draws is not None]
    done = [fits[c] for c in fitted]
    # the mixture over the fitted pieces (screened-out pieces weigh < exp(-screen))
    w = probs[fitted] / probs[fitted].sum()
    mix_mean = w @ np.stack([f.mean for f in done])
    mix_sd = np.sqrt(np.maximum(w @ np.stack([f.second for f in done]) - mix_mean**2, 0.0))
    names = ["z", "y_mis"] + (["class_probs"] if model == "partitioned" else [])
    z_name = {"per-class": "theta", "partitioned": "z"}[model]
    draws = {name: np.stack([f.draws[z_name if name == "z" else name] for f in done], axis=2) for name in names}
    class_weights = w @ np.stack([f.class_weights for f in done]) if model == "partitioned" else None
    return PerClassResult(probs, chain_probs, log_z, np.array([f.pareto_k for f in fits]), mix_mean, mix_sd,
                          [f.row for f in fits], draws, fitted, model, class_weights, "\n".join(f.log for f in done))  # fmt: skip


def run_per_class(decoder: dict, obs: Observation, sigma: float, settings: SamplerSettings | None = None,
                  engine: str = "auto", n_importance: int = 4000, screen: float | None = None,
                  model: str = "per-class") -> PerClassResult:  # fmt: skip
    """Fit the plausible pieces (classes, or dominant-class regions) given the image, then weigh them by their masses.

    ``screen``: pieces whose Laplace log evidence is more than this many nats below the
    best piece's get no NUTS fit; their Laplace value stands in (a relative weight below
    exp(-screen)); ``math.inf`` fits every piece; ``None`` takes ``SCREEN[model]``.

    The chains of a fitted piece start at the distinct optima of the batched multi-start
    optimisation (best first; unless ``settings.init`` is a list), and the piece's mass
    comes from importance sampling with a mixture of one t proposal per chain: a mode
    found by any chain counts with its posterior mass. Its imputations come from the
    chains' draws where the chains share one mode, else from the same importance draws.
    """
    check_class_model(model)
    screen = SCREEN[model] if screen is None else screen
    if not screen > 0:
        raise SurrogateError(f"class screen must be a positive number of nats (inf: fit every class), found {screen}")
    if decoder["C"] < 2:
        raise SurrogateError(f"class model {model} needs a conditional decoder with C >= 2 classes; this one has C = {decoder['C']}")
    if not sigma or sigma <= 0:
        raise SurrogateError(f"class model {model} needs a fixed positive sigma, found {sigma}")
    settings = settings or SamplerSettings(chains=4, warmup=1000, draws=2000)
    runner = get_engine(engine)
    pieces = Pieces(decoder, obs, sigma, model)
    # --- screen: many batched starts per piece, the best polished, Laplace evidence there ---
    _, starts = multistart_optima(decoder, obs, sigma, starts=max(16, settings.chains), seed=settings.seed, model=model)
    laplace = np.array([_laplace_evidence(pieces, c, starts[c, :1])[0] for c in range(decoder["C"])])
    fitted = [c for c in range(decoder["C"]) if laplace[c] >= laplace.max() - screen]
    # --- one NUTS fit per plausible piece ---
    iterations = len(fitted) * settings.chains * (settings.warmup + settings.draws)
    with console.one_bar(iterations, f"{model} fits ({len(fitted)} of {decoder['C']} pieces)"):
        fits = [fit_piece(runner, pieces, decoder, obs, c, settings, starts[c], float(laplace[c]), n_importance) if c in fitted
                else screened_piece(c, float(laplace[c]), settings.chains) for c in range(decoder["C"])]  # fmt: skip
    # --- the pieces weighed by their masses ---
    return combine(fits, model)


def _normalize(log_z: np.ndarray) -> np.ndarray:
    """Posterior class probabilities from log evidences (last axis), uniform class prior."""
    p = np.exp(log_z - log_z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


