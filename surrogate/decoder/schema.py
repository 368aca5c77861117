"""The Stan interface in one place: data keys, integer codes and latent names.

Every Stan program in ``stan/`` reads its data under these names and codes; the Python side
writes and reads them only through this module (numpy only: no torch import).
"""

from __future__ import annotations

from surrogate.errors import SurrogateError

# --- the decoder block (stan/include/decoder_data.stan), as written by `surrogate export` ---
MAX_HIDDEN = 4  # hidden layers the programs unroll
DECODER_FORMAT = "surrogate-decoder/1"
SIZE_KEYS = ("K", "C", "D", "L", "H", "hidden_activation", "output_activation")
ARRAY_KEYS = (*(f"{p}{i}" for i in range(1, MAX_HIDDEN + 1) for p in ("W", "b")), "W_out", "b_out")
DECODER_KEYS = (*SIZE_KEYS, *ARRAY_KEYS)
# the conditioned linear path of a spatial/GP CVAE (stan/include/linear_path_data.stan); G = 0: none
LINEAR_PATH_KEYS = ("G", "lin_knots", "lin_nnz", "lin_w", "lin_v", "lin_u", "lin_basis")

# --- integer codes (each Stan dispatcher rejects any other) ---
HIDDEN_CODES = {"elu": 1, "tanh": 2, "relu": 3, "softplus": 4}  # hidden_activate()
OUTPUT_CODES = {"identity": 0, "sigmoid": 1}  # output_activate()
KERNEL_CODES = {"rbf": 1, "matern12": 2, "matern32": 3, "matern52": 4}  # gp_kernel(), gp_log_spd()
LIKELIHOOD_CODES = {"gaussian": 1, "poisson": 2, "binomial": 3}  # observations_log_density()

# --- the inpainting observation block (stan/include/inpaint_data.stan), saved as observations.json ---
INPAINT_OBSERVATION_KEYS = ("N_obs", "obs_idx", "y_obs", "estimate_sigma", "sigma_fixed", "sigma_prior_scale")

# the latent coordinates of each GP program (the standardised field)
GP_LATENT = {"surrogate": "z", "exact": "eta_f", "hsgp": "beta"}


def name_of(table: dict[str, int], what: str, code: int) -> str:
    """The name of ``code`` in ``table``; an unknown code lists the valid ones."""
    names = {c: n for n, c in table.items()}
    if code not in names:
        raise SurrogateError(f"{what} must be one of {', '.join(f'{c} ({n})' for n, c in table.items())}, found {code!r}")
    return names[code]
