"""The class posterior from per-class (or per-region) fits combined by their marginal likelihoods.

The softmax class model (``inpaint.stan``) feeds relaxed class weights to the decoder,
and its posterior has well-separated modes that single chains cannot cross. Two
remedies split the posterior into pieces, one per class c, sample each piece with
Stan's NUTS and weigh the pieces by their estimated probability mass:

``per-class``
    The class is what the CVAE was trained on, a one-hot vector. Fixing class c turns
    the decoder into an unconditional one, ``W1 [z; e_c] + b1 = W1[:, :K] z + (b1 +
    W1[:, K + c])``, sampled with ``inpaint.stan`` (C = 0). The pieces are the classes;
    ``p(c | y) ∝ p(y | c)`` (uniform prior). A different model from the blog's.
``partitioned``
    The blog's softmax model itself, exactly: its parameter space is cut into the C
    regions where class c has the largest weight (``inpaint_dominant.stan``), each
    region sampled alone. The pieces' masses add up to the softmax model's evidence,
    so the combination *is* the softmax model's posterior, the one that chains started
    at random report only when they happen to agree. The class posterior reported is
    ``p(dominant class = c | y)``; the mean class weights are reported beside it.

For either, ``p(y, piece c) = ∫ p(y_obs | φ) p(φ) dφ`` over the piece's unconstrained
parameters φ is estimated by importance sampling from a mixture of multivariate t's,
one fitted to each chain's draws; the Pareto k̂ of the weights (PSIS, Vehtari et al.
2024) says whether the estimate can be trusted. A piece can be multimodal itself
(stroke styles), so its chains start at distinct optimisation optima and the mixture
proposal weighs the modes they found by mass, not by how many chains found them.
Imputations are the mixture over pieces of the means within each piece: the chains' draws
where the chains share one mode (R-hat <= 1.1 and the chains' own evidences within 1 nat),
else the self-normalised importance-sampling means, which weigh the chains' modes by mass.
The fits are independent (embarrassingly parallel).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from surrogate.diagnostics import MODE_RHAT, RHAT_LIMIT, import_arviz, rmse
from surrogate.errors import SurrogateError
from surrogate.export import torch_decoder
from surrogate.inpaint import Observation, stan_data
from surrogate.inference import SamplerSettings, console, get_engine

PARETO_K_LIMIT = 0.7  # above this the importance-sampling estimate is unreliable
CHAIN_SPREAD_LIMIT = 0.05  # max |p_chain_i(c | y) - p_chain_j(c | y)| for chains to count as agreeing
ONE_MODE_LOG_Z = 1.0  # nats: chains whose own evidence estimates are this close (and R-hat <= MODE_RHAT) share one mode
CLASS_MODELS = {"per-class": "inpaint", "partitioned": "inpaint_dominant"}  # class model -> Stan program of a piece
# Default Laplace screen (nats below the best piece) per class model: a piece 15 nats down weighs < 3e-7.
# Measured: Laplace values within about 1 nat of the importance-sampling ones on the benchmark digits.
SCREEN = {"per-class": 30.0, "partitioned": 15.0}
LOG_2PI = math.log(2 * math.pi)


def check_class_model(model: str) -> None:
    if model not in CLASS_MODELS:
        raise SurrogateError(f"class model must be one of {', '.join(CLASS_MODELS)}, found {model!r}")


def fix_class(decoder: dict, c: int) -> dict:
    """The CVAE decoder with its class input fixed to one-hot ``c``: an unconditional decoder."""
    K, C = decoder["K"], decoder["C"]
    if not 0 <= c < C:
        raise SurrogateError(f"class must be in 0..{C - 1}, found {c}")
    fixed = dict(decoder)
    fixed["C"] = 0
    fixed["W1"] = np.ascontiguousarray(decoder["W1"][:, :K])
    fixed["b1"] = decoder["b1"] + decoder["W1"][:, K + c]
    return fixed


def dominant_logits(rest, log_lead, cls, C: int):
    """Class logits of the regions ``cls`` [n] (``dominant_logits`` of ``decoder.stanfunctions``, batched).

    Row i: the logits of the classes other than ``cls[i]`` are ``rest[i]`` (in class order);
    logit ``cls[i]`` lies ``exp(log_lead[i])`` above their maximum.
    """
    others = _other_classes(C)
    top = rest.max(1).values + log_lead.exp()
    logits = rest.new_zeros(len(rest), C).scatter(1, others[cls], rest)
    return logits.scatter(1, cls[:, None], top[:, None])


@functools.cache
def _other_classes(C: int):
    """Row c: the classes other than c, in order (an index table, built once per C)."""
    import torch

    return torch.tensor([[j for j in range(C) if j != c] for c in range(C)], dtype=torch.long)


class Pieces:
    """log p(y_obs, φ, piece c) for the pieces of a class model, batched over rows of φ (PyTorch, float64).

    φ, a piece's unconstrained parameters: ``per-class`` z [K]; ``partitioned`` (z [K], the
    other C - 1 logits, log of the dominant logit's lead over them). The density of
    ``partitioned`` includes the Jacobian of the lead's log transform, as Stan's does.
    """

    def __init__(self, decoder: dict, obs: Observation, sigma: float, model: str = "per-class"):
        import torch

        check_class_model(model)
        self.K, self.C, self.model = decoder["K"], decoder["C"], model
        self.dim = self.K if model == "per-class" else self.K + self.C
        self.net = torch_decoder(decoder)
        self.observed = torch.from_numpy(~obs.missing)
        self.missing = obs.missing
        self.y = torch.from_numpy(obs.y)[self.observed]
        self.sigma = sigma
        self.const = -int(self.observed.sum()) * (math.log(sigma) + 0.5 * LOG_2PI)

    def inputs(self, phi, cls):
        """(decoder input [n, K + C], log prior density of φ [n])."""
        import torch

        K, C = self.K, self.C
        z = phi[:, :K]
        if self.model == "per-class":
            x = torch.cat([z, torch.nn.functional.one_hot(cls, C).to(phi.dtype)], 1) if C else z
            return x, -0.5 * (z**2).sum(1) - 0.5 * K * LOG_2PI
        logits = dominant_logits(phi[:, K:-1], phi[:, -1], cls, C)
        log_prior = -0.5 * (z**2).sum(1) - 0.5 * (logits**2).sum(1) - 0.5 * (K + C) * LOG_2PI + phi[:, -1]
        return torch.cat([z, torch.softmax(logits, 1)], 1), log_prior

    def log_joint(self, phi, cls):
        x, log_prior = self.inputs(phi, cls)
        mean = self.net(x)[:, self.observed]
        return self.const - 0.5 * (((self.y - mean) / self.sigma) ** 2).sum(1) + log_prior

    def log_joint_np(self, phi: np.ndarray, c: int) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.log_joint(torch.from_numpy(phi), torch.full((len(phi),), c, dtype=torch.long)).numpy()

    def decode(self, phi: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(decoded mean at the missing positions [n, M], class weights [n, C]) for rows of φ in piece ``c``."""
        import torch

        with torch.no_grad():
            x, _ = self.inputs(torch.from_numpy(phi), torch.full((len(phi),), c, dtype=torch.long))
            return self.net(x).numpy()[:, self.missing], x[:, self.K :].numpy()

    # --- the Stan side of a piece ---
    def stan(self, decoder: dict, obs: Observation, c: int) -> tuple[str, dict]:
        """(program, data) that samples piece ``c``."""
        if self.model == "per-class":
            return "inpaint", stan_data(fix_class(decoder, c), obs, self.sigma)
        return "inpaint_dominant", {**stan_data(decoder, obs, self.sigma), "dominant": c + 1}

    def stan_init(self, phi: np.ndarray) -> dict:
        if self.model == "per-class":
            return {"theta": phi.tolist()}
        K = self.K
        return {"z": phi[:K].tolist(), "rest": phi[K:-1].tolist(), "lead": float(np.exp(phi[-1]))}

    def phi_draws(self, draws: dict) -> np.ndarray:
        """φ from a fit's draws, [chain, draw, dim]."""
        if self.model == "per-class":
            return draws["theta"]
        return np.concatenate([draws["z"], draws["rest"], np.log(draws["lead"])[..., None]], axis=-1)


def log_joint(decoder: dict, obs: Observation, sigma: float, z: np.ndarray, model: str = "per-class", c: int = 0) -> np.ndarray:
    """log p(y_obs, φ) of piece ``c`` for each row of ``z`` (φ; float64), e.g. log N(y_obs | dec(z), σ) + log N(z | 0, I)."""
    return Pieces(decoder, obs, sigma, model).log_joint_np(z, c)


def log_evidence(decoder: dict, obs: Observation, sigma: float, z_draws, n: int = 4000, seed: int = 0, df: float = 5.0,
                 return_draws: bool = False, model: str = "per-class", c: int = 0):  # fmt: skip
    """(log p(y, piece c), Pareto k̂) by importance sampling from multivariate t proposals fitted to ``z_draws``.

    ``z_draws`` is one array of draws of φ ``[S, dim]`` or a list of them (one per chain).
    With a list the proposal is the equal mixture of one t per chain (multiple importance
    sampling), so modes found by any chain are covered and weighed by their posterior
    mass, not by how many chains found them. ``return_draws`` also returns the proposal
    draws and their log weights (for self-normalised posterior expectations).
    """
    return _log_evidence(Pieces(decoder, obs, sigma, model), c, z_draws, n, seed, df, return_draws)


def _log_evidence(pieces: Pieces, c: int, z_draws, n: int = 4000, seed: int = 0, df: float = 5.0, return_draws: bool = False):
    from scipy.special import logsumexp
    from scipy.stats import multivariate_t

    az = import_arviz()
    groups = [z_draws] if isinstance(z_draws, np.ndarray) else list(z_draws)
    rng = np.random.default_rng(seed)
    proposals = []
    for g in groups:
        cov = np.cov(g, rowvar=False) + 1e-9 * np.eye(g.shape[1])
        proposals.append(multivariate_t(loc=g.mean(axis=0), shape=cov, df=df))
    counts = np.diff(np.linspace(0, n, len(groups) + 1).round().astype(int))  # stratified: n / J draws from each
    z = np.concatenate([q.rvs(size=m, random_state=rng).reshape(m, -1) for q, m in zip(proposals, counts) if m])
    log_q = logsumexp(np.stack([q.logpdf(z).reshape(len(z)) for q in proposals]), axis=0) - np.log(len(proposals))
    log_w = pieces.log_joint_np(z, c) - log_q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k_hat = az.psislw(log_w.copy())
    estimate = (float(logsumexp(log_w) - np.log(len(z))), float(k_hat))
    return (*estimate, z, log_w) if return_draws else estimate


def multistart_optima(decoder: dict, obs: Observation, sigma: float, starts: int = 16, seed: int = 0, steps: int = 300,
                      model: str = "per-class") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(objective values [C, starts], optima [C, starts, dim]) of -log p(y_obs, φ, piece c), best first per piece.

    All pieces and starts are optimised in one batch by Adam (per-coordinate steps, so
    the stacked problems stay independent); many starts cost little more than one, and
    a single start misses a piece's best mode often enough to screen the true class out.
    The optima are approximate: :func:`laplace_evidence` polishes the one it is given.
    """
    import torch

    pieces = Pieces(decoder, obs, sigma, model)
    C = decoder["C"]
    cls = torch.arange(C).repeat_interleave(starts)
    phi = torch.randn(C * starts, pieces.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    opt = torch.optim.Adam([phi], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        (-pieces.log_joint(phi, cls)).sum().backward()
        opt.step()
    with torch.no_grad():
        values = (-pieces.log_joint(phi, cls)).numpy().reshape(C, starts)
    optima = phi.detach().numpy().reshape(C, starts, pieces.dim)
    order = np.argsort(values, axis=1)
    return np.take_along_axis(values, order, 1), np.take_along_axis(optima, order[..., None], 1)


def laplace_evidence(decoder: dict, obs: Observation, sigma: float, starts: int = 4, seed: int = 0,
                     inits: np.ndarray | None = None, model: str = "per-class", c: int = 0) -> tuple[float, np.ndarray, list[np.ndarray]]:  # fmt: skip
    """(Laplace approximation of log p(y, piece c), its mode φ, every start's optimum, best first) from L-BFGS runs.

    The runs start at ``inits`` (rows) when given, else at ``starts`` standard-normal draws.
    Used to screen pieces (a piece whose Laplace evidence is far below the best one's gets
    no full fit; see :func:`run_per_class`).
    """
    import torch

    pieces = Pieces(decoder, obs, sigma, model)
    if inits is None:
        inits = torch.randn(starts, pieces.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).numpy()
    return _laplace_evidence(pieces, c, inits)


def _laplace_evidence(pieces: Pieces, c: int, inits: np.ndarray) -> tuple[float, np.ndarray, list[np.ndarray]]:
    import torch

    cls = torch.tensor([c])

    def neg_log_joint(phi):
        return -pieces.log_joint(phi[None], cls)[0]

    optima = []
    for init in inits:
        phi = torch.tensor(init, dtype=torch.float64).requires_grad_(True)
        opt = torch.optim.LBFGS([phi], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def closure(opt=opt, phi=phi):
            opt.zero_grad()
            loss = neg_log_joint(phi)
            loss.backward()
            return loss

        opt.step(closure)
        optima.append((float(neg_log_joint(phi).detach()), phi.detach().clone()))
    optima.sort(key=lambda pair: pair[0])
    value, mode = optima[0]
    hessian = torch.autograd.functional.hessian(neg_log_joint, mode).numpy()
    sign, logdet = np.linalg.slogdet(hessian)
    if sign <= 0:
        logdet = np.inf  # not a maximum: give the piece no weight in the screen
    laplace = -value + 0.5 * pieces.dim * LOG_2PI - 0.5 * logdet
    return float(laplace), mode.numpy(), [phi.numpy() for _, phi in optima]


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
    az = import_arviz()
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
    log_z, k_hat, rows, chain_log_z, means, second, weights, fits, logs = [], [], [], [], [], [], [], [], []
    iterations = len(fitted) * settings.chains * (settings.warmup + settings.draws)
    with console.one_bar(iterations, f"{model} fits ({len(fitted)} of {decoder['C']} pieces)"):
        for c in range(decoder["C"]):
            if c not in fitted:
                log_z.append(float(laplace[c]))
                chain_log_z.append(np.full(settings.chains, float(laplace[c])))
                k_hat.append(float("nan"))
                rows.append({"class": c, "log_evidence": float(laplace[c]), "laplace_log_evidence": float(laplace[c]), "fitted": False})
                continue
            run_settings = settings
            if not isinstance(settings.init, list):  # start each chain at one of the best optima, best first
                run_settings = replace(settings, init=[pieces.stan_init(starts[c, j]) for j in range(settings.chains)])
            fit = runner.run(*pieces.stan(decoder, obs, c), run_settings)
            phi = pieces.phi_draws(fit.draws)
            checked = {"phi": phi, "y_mis": fit.draws["y_mis"]}
            if model == "partitioned":
                checked["class_probs"] = fit.draws["class_probs"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ds = az.convert_to_dataset(checked)
                rhat = float(np.nanmax(az.rhat(ds).to_array().values)) if phi.shape[0] > 1 else float("nan")
                ess = float(np.nanmin(az.ess(ds).to_array().values))
            lz, k, phi_is, log_w = _log_evidence(pieces, c, list(phi), n_importance, seed=settings.seed + c, return_draws=True)
            own_log_z = [_log_evidence(pieces, c, phi[j], n_importance, seed=settings.seed + c)[0] for j in range(phi.shape[0])]
            # E[y_mis | y, c], E[y_mis^2 | y, c] and the mean class weights: where the chains share one mode, their
            # draws (less Monte Carlo error); where they sit in different modes, pooling them would weigh each mode
            # by its number of chains, so the importance draws, self-normalised, weigh the modes by mass instead
            one_mode = phi.shape[0] > 1 and rhat <= MODE_RHAT and np.ptp(own_log_z) <= ONE_MODE_LOG_Z
            if one_mode:
                decoded = fit.draws["y_mis"].reshape(-1, fit.draws["y_mis"].shape[-1])
                onehot = np.broadcast_to(np.eye(decoder["C"])[c], (len(decoded), decoder["C"]))
                class_w = fit.draws["class_probs"].reshape(-1, decoder["C"]) if model == "partitioned" else onehot
                w_is = np.full(len(decoded), 1 / len(decoded))
            else:
                w_is = np.exp(log_w - log_w.max())
                w_is /= w_is.sum()
                decoded, class_w = pieces.decode(phi_is, c)
            means.append(w_is @ decoded)
            second.append(w_is @ decoded**2)
            weights.append(w_is @ class_w)
            log_z.append(lz)
            k_hat.append(k)
            chain_log_z.append(own_log_z)
            rows.append({"class": c, "log_evidence": lz, "laplace_log_evidence": float(laplace[c]), "fitted": True, "pareto_k": k,
                         "max_rhat": rhat, "min_ess_bulk": ess, "imputation": "chains" if one_mode else "importance sampling",
                         **fit.sampler_problems(), "sampling_s": float(max(fit.timing["sampling_s"]))})  # fmt: skip
            fits.append(fit.draws)
            logs.append(f"# piece {c}\n{fit.log}")
    log_z = np.array(log_z)
    probs = _normalize(log_z)
    chain_probs = _normalize(np.array(chain_log_z).T)
    # the mixture over the fitted pieces (screened-out pieces weigh < exp(-screen))
    w = probs[fitted] / probs[fitted].sum()
    means, second = np.stack(means), np.stack(second)  # [fitted, M]
    mix_mean = w @ means
    mix_sd = np.sqrt(np.maximum(w @ second - mix_mean**2, 0.0))
    names = ["z", "y_mis"] + (["class_probs"] if model == "partitioned" else [])
    z_name = {"per-class": "theta", "partitioned": "z"}[model]
    draws = {name: np.stack([f[z_name if name == "z" else name] for f in fits], axis=2) for name in names}
    class_weights = w @ np.stack(weights) if model == "partitioned" else None
    return PerClassResult(probs, chain_probs, log_z, np.array(k_hat), mix_mean, mix_sd, rows, draws, fitted, model, class_weights, "\n".join(logs))


def _normalize(log_z: np.ndarray) -> np.ndarray:
    """Posterior class probabilities from log evidences (last axis), uniform class prior."""
    p = np.exp(log_z - log_z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def summarize(result: PerClassResult, classes: list[str], truth: np.ndarray | None, missing: np.ndarray) -> dict:
    """A JSON-able assessment in the shape the softmax model's summary uses."""
    best = int(np.argmax(result.class_probs))
    out = {
        "class_model": result.model,
        "class_posterior": result.class_probs.tolist(),
        "predicted_class": classes[best],
        "predicted_prob": float(result.class_probs[best]),
        "log_evidence": result.log_evidence.tolist(),
        "pareto_k": result.pareto_k.tolist(),
        "per_class": result.per_class,
        "fitted_classes": [classes[c] for c in result.fitted],
        "chain_class_posterior": result.chain_class_probs.tolist(),
        "chain_max_abs_diff": float(np.ptp(result.chain_class_probs, axis=0).max()),
        "max_rhat_weighted": float(np.nanmax([r["max_rhat"] for r in result.per_class if r["fitted"] and result.class_probs[r["class"]] > 1e-3] or [np.nan])),
        "divergences": int(sum(r["divergences"] for r in result.per_class if r["fitted"])),
    }
    if result.class_weights is not None:
        out["mean_class_weights"] = result.class_weights.tolist()
    if truth is not None:
        out["rmse_missing"] = rmse(result.y_mis_mean, truth[missing])
    notes = []
    bad_k = [classes[i] for i, k in enumerate(result.pareto_k) if np.isfinite(k) and k > PARETO_K_LIMIT and result.class_probs[i] > 1e-3]
    if bad_k:
        notes.append(f"Pareto k̂ > {PARETO_K_LIMIT} for classes {', '.join(bad_k)}: their marginal likelihoods are unreliable; run more draws")
    fits = [r for r in result.per_class if r["fitted"]]
    unsettled = [classes[r["class"]] for r in fits if r["max_rhat"] > RHAT_LIMIT and result.class_probs[r["class"]] > 1e-3]
    if unsettled:
        notes.append(f"the chains of classes {', '.join(unsettled)} (posterior weight > 0.001) have R-hat > {RHAT_LIMIT}: "
                     "the posterior within that piece is not converged (run more draws) or multimodal. Chains in "
                     "different modes are combined by importance sampling, by mass; modes no chain found are missing: "
                     "run more chains")  # fmt: skip
    if out["chain_max_abs_diff"] > CHAIN_SPREAD_LIMIT:
        notes.append(f"the class posteriors from each chain alone differ by up to {out['chain_max_abs_diff']:.3f} "
                     f"(limit {CHAIN_SPREAD_LIMIT}): chains found different modes; the reported posterior combines them")  # fmt: skip
    if out["divergences"]:
        notes.append(f"{out['divergences']} divergent transitions across the {result.model} fits: raise --adapt-delta")
    out["warnings"] = notes
    return out


PROBABILITY = {"per-class": "p(c | y)", "partitioned": "p(dominant class = c | y)"}
PIECES = {"per-class": "per-class fits + marginal likelihoods", "partitioned": "softmax model, one fit per dominant-class region"}


def format_per_class(summary: dict, classes: list[str]) -> str:
    model = summary["class_model"]
    p = PROBABILITY[model]
    lines = [f"predicted class     {summary['predicted_class']} ({p} = {summary['predicted_prob']:.3f}; {PIECES[model]})"]
    if "mean_class_weights" in summary:
        top = int(np.argmax(summary["mean_class_weights"]))
        lines.append(f"class weights       posterior mean of the softmax weights: largest {classes[top]} ({summary['mean_class_weights'][top]:.3f})")
    if "rmse_missing" in summary:
        lines.append(f"imputation RMSE     {summary['rmse_missing']:.4f} on missing pixels (mixture over pieces)")
    lines.append(f"{model + ' fits':20s}classes {', '.join(summary['fitted_classes'])} fitted (others screened out by Laplace evidence); "
                 f"max R-hat {summary['max_rhat_weighted']:.3f} (pieces with p > 0.001), divergences {summary['divergences']}")
    lines.append(f"chains agree        class posteriors from each chain alone differ by at most {summary['chain_max_abs_diff']:.3f}")
    order = np.argsort(summary["class_posterior"])[::-1][:3]
    lines.append("top classes:")
    for i in order:
        k = summary["pareto_k"][i]
        how = f"k̂ = {k:.2f}" if k is not None and np.isfinite(k) else "Laplace, not fitted"
        lines.append(f"  class {classes[i]}  {p} = {summary['class_posterior'][i]:.4f}  log evidence {summary['log_evidence'][i]:.2f}  {how}")
    lines += [f"WARNING: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def write_per_class_outputs(out, result: PerClassResult, summary: dict, obs: Observation, meta: dict, classes: list[str]) -> None:
    """posterior.nc (each piece's draws along a ``fitted_class`` dim), diagnostics, summary and figures."""
    from pathlib import Path

    from surrogate.fileio import atomic_path, pyplot, save_figure, write_json, write_text
    from surrogate.inpaint import plot_imputations

    az = import_arviz()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    K = result.draws["z"].shape[-1]
    idata = az.from_dict(
        posterior=result.draws,
        constant_data={"class_posterior": result.class_probs, "log_evidence": result.log_evidence,
                       "pareto_k": result.pareto_k, "missing": obs.missing},  # fmt: skip
        coords={"class": classes, "fitted_class": [classes[c] for c in result.fitted], "latent": np.arange(K),
                "missing_pixel": np.flatnonzero(obs.missing), "pixel": np.arange(obs.y.size)},  # fmt: skip
        dims={"z": ["fitted_class", "latent"], "y_mis": ["fitted_class", "missing_pixel"], "class_probs": ["fitted_class", "class"],
              "class_posterior": ["class"], "log_evidence": ["class"], "pareto_k": ["class"], "missing": ["pixel"]},  # fmt: skip
        attrs={"class_model": result.model, "source": obs.source},
    )
    with atomic_path(out / "posterior.nc") as tmp:
        idata.to_netcdf(str(tmp))
    write_json(out / "diagnostics.json", summary)
    write_text(out / "engine.log", result.log)
    write_text(out / "summary.txt", format_per_class(summary, classes) + "\n")
    shape = tuple(meta.get("image_shape") or ())
    if len(shape) == 2:
        plot_imputations(out / "inpaint.png", obs, shape, [("mixture over classes", result.y_mis_mean, result.y_mis_sd)])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(classes, result.class_probs, color="black")
    ax.set_ylabel({"per-class": "p(class | observed pixels)", "partitioned": "p(dominant class | observed pixels)"}[result.model])
    ax.set_ylim(0, 1)
    fig.tight_layout()
    save_figure(fig, out / "class_probs.png")


def inpaint_per_class(decoder: dict, meta: dict, obs: Observation, sigma: float, settings: SamplerSettings,
                      engine: str = "auto", screen: float | None = None, out=None, model: str = "per-class") -> dict:  # fmt: skip
    """Run :func:`run_per_class` with class model ``model``, summarise it and write the outputs to ``out`` when given."""
    classes = meta.get("classes") or [str(c) for c in range(decoder["C"])]
    result = run_per_class(decoder, obs, sigma, settings, engine, screen=screen, model=model)
    summary = summarize(result, classes, obs.y if obs.truth_known else None, obs.missing)
    if out is not None:
        write_per_class_outputs(out, result, summary, obs, meta, classes)
    summary["text"] = format_per_class(summary, classes)
    return summary
