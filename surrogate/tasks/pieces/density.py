"""log p(y_obs, φ, piece c) of the piece-wise class models, in PyTorch (float64), batched over rows of φ.

The same densities as the Stan programs that sample the pieces (``inpaint.stan`` with a class
fixed, ``inpaint_dominant.stan``); the tests check the two agree.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from surrogate.errors import SurrogateError
from surrogate.nn.export import torch_decoder
from surrogate.tasks.inpaint import Observation, stan_data

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


