"""The linear Karhunen-Loeve path of a PriorCVAE decoder, following its condition.

A prior whose covariance ``Sigma(c)`` depends on a hyperparameter ``c`` (a GP's lengthscale, a
CAR's alpha, a BYM2's rho) has, at each ``c``, a best rank-K linear surrogate: its truncated
Karhunen-Loeve expansion. One basis serves the whole range: ``B``, the top-K eigenvectors of the
covariance averaged over the range, spans every member well (stationary kernels on a grid share
their leading modes). Projected on it, the prior at ``c`` is ``N(0, B S(c) B')`` with
``S(c) = B' Sigma(c) B``, so ``f = B L(c) z`` with ``L(c) = chol(S(c))`` and ``z ~ N(0, I)``
reproduces that projection exactly. ``L`` is tabulated at :data:`KNOTS` evenly spaced points of the
range and interpolated between them by Catmull-Rom cubics (continuous first derivatives, so NUTS
sees a smooth decoder; held constant beyond the range), in PyTorch and in Stan alike
(``conditioned_linear_path`` in ``stan/include/decoder.stanfunctions``).

``L`` is stored sparse (compressed rows, one pattern shared by the knots): the shared basis nearly
diagonalises every member of the range, so ``S(c)`` and its factor are dominated by few entries. The
pattern keeps the entries that reach :data:`SPARSE_TOL` at some knot, the largest threshold under
which ``F F'`` stays within :data:`SPARSE_TOL` of ``S`` (relative Frobenius) at every knot. On a
50 x 50 grid with the lengthscale in [0.05, 0.3] (K = 903) that keeps 9,924 of the 408,156 entries of
the lower triangle: per gradient, four sparse products instead of four dense K x K ones.

The decoder of a CVAE is then ``B L(c) z + MLP(z, c)``: training starts at the projection (the
MLP's output layer at zero) and the MLP learns what is left. Measured in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from surrogate.errors import SurrogateError

KNOTS = 32  # points of the condition's range at which L(c) is tabulated
MAX_AUTO_LATENT = 2000  # the largest K --latent auto considers (a BYM2 on 2,000 areas needs them all; docs/bench_scale.json)
JITTER = 1e-9  # relative to the largest eigenvalue, added before factorising S(c)
#: the sparse factor may change B' Sigma(c) B by this much (relative Frobenius) at any knot: well below
#: check-prior's sampling floor (0.07-0.28 on 50 x 50 with the lengthscale in 0.05-0.3, 1,000 draws)
SPARSE_TOL = 0.01
THRESHOLDS = (1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6)  # tried in turn, relative to the largest entry


def knots(lo: float, hi: float, count: int = KNOTS) -> np.ndarray:
    """``count`` evenly spaced knots over [lo, hi]."""
    return np.linspace(lo, hi, count)


def spectrum(C: np.ndarray) -> dict:
    """How many Karhunen-Loeve dimensions a covariance needs: ``k90``/``k95``/``k99`` (share of the
    total variance), ``k_local95`` (95% at every location); ``share`` and ``local_min`` per K."""
    lam, V = np.linalg.eigh(C)
    order = np.argsort(lam)[::-1]
    lam, V = np.clip(lam[order], 0, None), V[:, order]
    share = np.cumsum(lam) / lam.sum()
    local = np.cumsum(V**2 * lam, axis=1) / np.diag(C)[:, None]  # [location, K]: its variance kept by the top K
    k_local = int(np.argmax(local.min(0) >= 0.95) + 1)  # every location keeps 95% of its variance
    return {"k90": int(np.searchsorted(share, 0.90) + 1), "k95": int(np.searchsorted(share, 0.95) + 1),
            "k99": int(np.searchsorted(share, 0.99) + 1), "k_local95": k_local, "share": share, "local_min": local.min(0)}  # fmt: skip


def shared_basis(covariance: Callable[[float], np.ndarray], lo: float, hi: float, count: int = KNOTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eigenvalues, eigenvectors of the range's mean covariance, sorted descending; the knots' values).

    The knots' covariances are built one at a time and summed (not kept): at 5,000 locations each is
    200 MB, and 32 of them held at once were 6.4 GB. The one eigendecomposition is the only O(N^3) step."""
    values = np.unique(knots(lo, hi, count))
    mean = 0.0
    for v in values:
        mean = mean + np.asarray(covariance(float(v)), dtype=np.float64) / len(values)
    lam, V = np.linalg.eigh(mean)
    order = np.argsort(lam)[::-1]
    return lam[order], V[:, order], values


def kept_by_basis(V: np.ndarray, covariance: Callable[[float], np.ndarray], values) -> tuple[np.ndarray, np.ndarray]:
    """Per K: the smallest share of total variance, and of any one location's variance, that
    projecting on the top-K columns of ``V`` keeps, over the covariances at ``values`` (one N x N
    matrix at a time; per value O(N^2 K), no factorisation)."""
    share = np.full(V.shape[1], np.inf)
    local = np.full(V.shape[1], np.inf)
    for v in values:
        C = np.asarray(covariance(float(v)), dtype=np.float64)
        CV = C @ V
        diag = np.einsum("ij,ij->j", V, CV)  # v_k' C v_k
        share = np.minimum(share, np.cumsum(diag) / np.trace(C))
        # location i's variance under the projection P C P, for each K: sum_{k,l<=K} V_ik S_kl V_il with
        # S = V' C V, accumulated over K (T[:, k] = sum_{l<k} V_il S_lk)
        S = V.T @ CV
        T = V @ np.triu(S, 1)
        within = np.cumsum(V * (2 * T + V * diag), axis=1).T
        local = np.minimum(local, (within / np.diag(C)[None, :]).min(1))
        del C, CV, S, T, within
    return share, local


#: knots of the range at which ``--latent auto`` measures what K keeps: the least share is at the range's rough
#: end, so 9 evenly spaced values (ends included) find it as the path's 32 do (measured in docs/bench_scale.json)
AUTO_KNOTS = 9


def auto_latent(covariance: Callable[[float], np.ndarray], lo: float, hi: float, count: int = AUTO_KNOTS) -> dict:
    """The latent size of a conditioned linear path that keeps 99% of the variance at every knot
    of [lo, hi] and 95% at every location (``latent``), with the figures it rests on. At most
    :data:`MAX_AUTO_LATENT` (``capped`` says when the targets need more)."""
    _, V, values = shared_basis(covariance, lo, hi, count)
    top = np.ascontiguousarray(V[:, : min(V.shape[1], MAX_AUTO_LATENT)])  # beyond it: the cap, its shares below the targets
    del V
    share, local = kept_by_basis(top, covariance, values)
    k99 = int(np.argmax(share >= 0.99) + 1) if (share >= 0.99).any() else top.shape[1]
    k_local = int(np.argmax(local >= 0.95) + 1) if (local >= 0.95).any() else top.shape[1]
    latent = max(k99, k_local)
    capped = bool(share[-1] < 0.99 or local[-1] < 0.95) and top.shape[1] == MAX_AUTO_LATENT
    return {"latent": latent, "k99": k99, "k_local95": k_local, "kept_share_min": float(share[latent - 1]), "kept_local_min": float(local[latent - 1]),
            "capped": capped}  # fmt: skip


def sparsify(factors: np.ndarray, projected: list[np.ndarray], tol: float = SPARSE_TOL) -> tuple[np.ndarray, float, float]:
    """(mask [K, K] of the entries kept, the threshold, the largest relative error ``||F F' - S|| / ||S||``
    over the knots) for the factors [G, K, K] of ``projected`` [G of K x K]: the largest threshold of
    :data:`THRESHOLDS` whose error stays within ``tol``; the whole lower triangle when none does."""
    size = np.abs(factors).max(0)
    top = size.max()
    norms = [np.linalg.norm(S) for S in projected]
    for threshold in THRESHOLDS:
        mask = (size > threshold * top) | np.eye(len(size), dtype=bool)
        error = 0.0
        for F, S, norm in zip(factors, projected, norms):
            Fm = F * mask
            error = max(error, float(np.linalg.norm(Fm @ Fm.T - S) / norm))
            if error > tol:
                break
        if error <= tol:
            return mask, threshold, error
    return np.tril(np.ones_like(size, dtype=bool)), 0.0, 0.0


def conditioned_path(covariance: Callable[[float], np.ndarray], lo: float, hi: float, latent: int, count: int = KNOTS) -> dict:
    """``knots`` [G]; the factors ``L(c_g) = chol(B' Sigma(c_g) B)`` in compressed rows: ``rows``/``cols``
    [nnz] (0-based, row-major) and ``values`` [G, nnz]; ``basis`` [D, K] (B); ``kept_share_min``, the least
    share of the variance the projection keeps over the knots; ``sparse``: the pattern's figures."""
    if not lo < hi:
        raise SurrogateError(f"a conditioned linear path needs a range of the hyperparameter, found [{lo}, {hi}]")
    lam, V, values = shared_basis(covariance, lo, hi, count)
    B = np.ascontiguousarray(V[:, :latent])
    del V
    factors, projected, share = [], [], 1.0
    for v in values:  # one N x N covariance at a time: O(N^2 K + K^3) per knot
        C = np.asarray(covariance(float(v)), dtype=np.float64)
        S = B.T @ (C @ B)
        share = min(share, float(np.trace(S) / np.trace(C)))
        del C
        S = 0.5 * (S + S.T) + JITTER * max(lam[0], 1e-12) * np.eye(latent)
        projected.append(S)
        factors.append(np.linalg.cholesky(S))
    factors = np.stack(factors)
    mask, threshold, error = sparsify(factors, projected)
    rows, cols = np.nonzero(mask)  # row-major: compressed rows
    sparse = {"nnz": int(len(rows)), "lower_triangle": latent * (latent + 1) // 2, "threshold": threshold, "max_rel_error": error}
    return {"knots": knots(lo, hi, count), "rows": rows, "cols": cols, "values": factors[:, rows, cols], "basis": B,
            "kept_share_min": share, "sparse": sparse}  # fmt: skip


def catmull_rom(t: torch.Tensor) -> torch.Tensor:
    """Weights [..., 4] of the knots g-1, g, g+1, g+2 at the fraction ``t`` of the way from knot g to g+1:
    the Catmull-Rom cubic, which passes through the knots with continuous first derivatives (so
    the sampler sees a smooth decoder in c)."""
    t2, t3 = t * t, t * t * t
    return torch.stack([(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2], -1)


def interpolation(knot_values: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices [N, 4] of the knots g-1..g+2, clamped to the table, and their Catmull-Rom weights [N, 4])
    for each condition value; evenly spaced knots, the value held at the ends beyond them. In the first
    and last intervals the missing outer knot is the quadratic extrapolation of the three nearest
    (``3 P_0 - 3 P_1 + P_2``), folded into their weights: the end intervals keep the interior's accuracy
    (a repeated end knot made the first interval's error about 5 times the others')."""
    G = len(knot_values)
    if G == 1:
        return torch.zeros(len(c), 4, dtype=torch.long, device=c.device), torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=c.dtype, device=c.device).expand(len(c), 4)
    s = ((c - knot_values[0]) / (knot_values[1] - knot_values[0])).clamp(0, G - 1)
    g = s.floor().long().clamp(max=G - 2)
    idx = (g[:, None] + torch.arange(-1, 3, device=c.device)).clamp(0, G - 1)
    w = catmull_rom(s - g)
    if G > 2:
        fold = torch.tensor([3.0, -3.0, 1.0], dtype=w.dtype, device=w.device)
        first, last = (g == 0)[:, None], (g == G - 2)[:, None]
        w = torch.where(first, torch.cat([torch.zeros_like(w[:, :1]), w[:, 1:] + w[:, :1] * fold], 1), w)
        w = torch.where(last, torch.cat([w[:, :3] + w[:, 3:] * fold.flip(0), torch.zeros_like(w[:, :1])], 1), w)
    return idx, w


class ConditionedLinearPath(nn.Module):
    """``B L(c) z``: fixed buffers (not trained), filled by :meth:`set_path` from :func:`conditioned_path`.

    ``L`` at the knots in compressed rows: ``rows``/``cols`` [nnz] and ``values`` [G, nnz] (the pattern's
    size is the path's, so the buffers take the shapes of what is set or loaded). A state dict saved
    with the dense ``factor`` [G, K, K] of earlier versions loads as its lower triangle.
    """

    def __init__(self, output_dim: int, latent_dim: int, count: int = KNOTS):
        super().__init__()
        rows, cols = np.tril_indices(latent_dim)
        self.latent_dim = latent_dim
        self.register_buffer("knots", torch.linspace(0, 1, count, dtype=torch.float64))
        self.register_buffer("rows", torch.as_tensor(rows, dtype=torch.long))
        self.register_buffer("cols", torch.as_tensor(cols, dtype=torch.long))
        self.register_buffer("values", torch.zeros(count, len(rows), dtype=torch.float64))
        self.register_buffer("basis", torch.zeros(output_dim, latent_dim, dtype=torch.float64))

    @torch.no_grad()
    def set_path(self, path: dict) -> None:
        """Take ``knots``, ``rows``, ``cols``, ``values`` and ``basis`` (see :func:`conditioned_path`)."""
        rows, cols = (torch.as_tensor(np.asarray(path[k]), dtype=torch.long) for k in ("rows", "cols"))
        values = torch.as_tensor(np.asarray(path["values"]), dtype=torch.float64)
        G, K = len(self.knots), self.latent_dim
        assert rows.shape == cols.shape and values.shape == (G, len(rows)), f"values has shape {tuple(values.shape)}, expected {(G, len(rows))}"
        assert len(rows) == 0 or (0 <= int(rows.min()) and int(rows.max()) < K and 0 <= int(cols.min()) and int(cols.max()) < K), "rows/cols outside the latent size"
        self.rows, self.cols, self.values = rows.to(self.rows.device), cols.to(self.cols.device), values.to(self.values.device)
        for name in ("knots", "basis"):
            value = torch.as_tensor(np.asarray(path[name]), dtype=torch.float64)
            buffer = getattr(self, name)
            assert value.shape == buffer.shape, f"{name} has shape {tuple(value.shape)}, expected {tuple(buffer.shape)}"
            buffer.copy_(value)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        dense = state_dict.pop(prefix + "factor", None)
        if dense is not None:  # saved before the factor was stored sparse
            rows, cols = np.tril_indices(dense.shape[-1])
            state_dict[prefix + "rows"] = torch.as_tensor(rows, dtype=torch.long)
            state_dict[prefix + "cols"] = torch.as_tensor(cols, dtype=torch.long)
            state_dict[prefix + "values"] = dense[:, rows, cols]
        for name in ("rows", "cols", "values"):  # the pattern's size is the saved path's
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def factor(self) -> torch.Tensor:
        """The factors at the knots, dense [G, K, K]."""
        out = torch.zeros(len(self.knots), self.latent_dim, self.latent_dim, dtype=self.values.dtype, device=self.values.device)
        out[:, self.rows, self.cols] = self.values
        return out

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        idx, w = interpolation(self.knots.to(c.dtype), c[:, 0])
        values = self.values.to(z.dtype)
        w = w.to(z.dtype)
        entries = sum(w[:, j, None] * values[idx[:, j]] for j in range(4))  # L(c)'s stored entries, [N, nnz]
        Lz = torch.zeros_like(z).index_add_(1, self.rows, entries * z[:, self.cols])
        return Lz @ self.basis.to(z.dtype).T
