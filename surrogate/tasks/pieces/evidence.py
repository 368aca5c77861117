"""A piece's evidence: batched multi-start optimisation, the Laplace approximation, importance sampling."""

from __future__ import annotations

import warnings

import numpy as np

from surrogate.inference.idata import import_arviz
from surrogate.tasks.inpaint import Observation
from surrogate.tasks.pieces.density import LOG_2PI, Pieces


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


