"""One MLP family: autoencoder (AE), variational (VAE) and conditional VAE (CVAE).

The decoder is a plain ``nn.Sequential`` of ``Linear`` and activation modules,
so that it maps 1:1 onto the Stan program in ``stan/``. A conditioning vector
``c`` is concatenated to the encoder input and after ``z`` at the decoder
input (z first, then c).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.nn.linear_path import ConditionedLinearPath

#: Hidden activations (their Stan codes: surrogate.decoder.schema.HIDDEN_CODES).
HIDDEN_ACTIVATIONS = {"elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}
#: Output activations (their Stan codes: surrogate.decoder.schema.OUTPUT_CODES).
OUTPUT_ACTIVATIONS = {"identity": nn.Identity, "sigmoid": nn.Sigmoid}
MODEL_KINDS = ("ae", "vae", "cvae")


def mlp(sizes: list[int], activation: str, output_activation: str | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Linear layers between ``sizes`` with ``activation`` (then dropout, when > 0) after each hidden one.

    The last Linear gets ``output_activation`` (none when ``None``; an identity
    output adds no module).
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(HIDDEN_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    if output_activation not in (None, "identity"):
        layers.append(OUTPUT_ACTIVATIONS[output_activation]())
    return nn.Sequential(*layers)


class Output(NamedTuple):
    x_hat: torch.Tensor  # decoded mean, [N, D]
    z: torch.Tensor  # code used by the decoder, [N, K]
    mu: torch.Tensor  # encoder mean (the code itself for an AE)
    logvar: torch.Tensor | None  # encoder log-variance (None for an AE)


class MLPAutoencoder(nn.Module):
    """An MLP encoder/decoder pair; ``kind`` is ``ae``, ``vae`` or ``cvae``.

    Args:
        kind: ``ae`` (deterministic code), ``vae`` or ``cvae`` (Gaussian code,
            reparameterised; the CVAE is conditioned on a ``cond_dim`` vector).
        input_dim: values per example (784 for MNIST).
        hidden_dims: encoder widths, e.g. ``(400, 200, 100)``; the decoder uses
            them reversed.
        latent_dim: size of the code ``z``.
        cond_dim: size of the condition (0 unless ``kind == "cvae"``).
        activation: hidden activation name.
        output_activation: ``sigmoid`` for images in [0, 1], ``identity`` else.
        dropout: dropout probability after each hidden layer of the encoder
            (a dropout autoencoder); the decoder, the part exported to Stan, has none.
        linear_path: add a linear map of ``z`` to the decoder's output, ``decode(z, c) =
            A z + MLP(z, c)`` (initialised by :func:`init_linear_path` to the prior's
            Karhunen-Loeve basis, so training starts at the linear floor). Export folds it
            into the dense layers (see ``surrogate.nn.export``); ELU or ReLU only.
        conditioned_path: for a CVAE on one hyperparameter, a linear path that follows it,
            ``decode(z, c) = B L(c) z + MLP(z, c)`` (:mod:`surrogate.nn.linear_path`; fixed
            buffers set by ``set_path``, exported as the ``lin_*`` Stan data).
    """

    def __init__(
        self,
        kind: str,
        input_dim: int,
        hidden_dims: tuple[int, ...] = (400, 200, 100),
        latent_dim: int = 15,
        cond_dim: int = 0,
        activation: str = "elu",
        output_activation: str = "sigmoid",
        dropout: float = 0.0,
        linear_path: bool = False,
        conditioned_path: bool = False,
    ):
        super().__init__()
        check_choice("model", kind, MODEL_KINDS)
        check_choice("activation", activation, HIDDEN_ACTIVATIONS)
        check_choice("output activation", output_activation, OUTPUT_ACTIVATIONS)
        check_positive_int("latent", latent_dim)
        check_positive_int("input dimension", input_dim)
        if not 1 <= len(hidden_dims) <= 4:
            raise SurrogateError(f"hidden must list 1 to 4 layer widths, found {list(hidden_dims)}")
        for width in hidden_dims:
            check_positive_int("each hidden width", width)
        if (kind == "cvae") != (cond_dim > 0):
            raise SurrogateError(f"cond_dim must be > 0 exactly for a cvae, found {cond_dim} for {kind}")
        self.kind = kind
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        hidden = list(hidden_dims)
        if not 0 <= dropout < 1:
            raise SurrogateError(f"dropout must be a probability in [0, 1), found {dropout}")
        self.encoder = mlp([input_dim + cond_dim, *hidden], activation, dropout=dropout)
        # The encoder's last hidden layer is followed by its activation (and dropout), then the heads.
        self.encoder.append(HIDDEN_ACTIVATIONS[activation]())
        if dropout > 0:
            self.encoder.append(nn.Dropout(dropout))
        self.to_mu = nn.Linear(hidden[-1], latent_dim)
        self.to_logvar = nn.Linear(hidden[-1], latent_dim) if kind != "ae" else None
        self.decoder = mlp([latent_dim + cond_dim, *reversed(hidden), input_dim], activation, output_activation)
        self.linear = None
        if linear_path:
            if activation not in ("elu", "relu") or output_activation != "identity":
                raise SurrogateError(f"a linear path needs activation elu or relu and an identity output, found {activation} and {output_activation}")
            self.linear = nn.Linear(latent_dim, input_dim, bias=False)
        self.cond_linear = None
        if conditioned_path:
            if kind != "cvae" or cond_dim != 1 or output_activation != "identity" or linear_path:
                raise SurrogateError(f"a conditioned linear path needs a cvae on one hyperparameter with an identity output and no plain linear path, "
                                     f"found {kind} with cond_dim {cond_dim}, output {output_activation}")  # fmt: skip
            self.cond_linear = ConditionedLinearPath(input_dim, latent_dim)

    @property
    def variational(self) -> bool:
        return self.to_logvar is not None

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x if c is None else torch.cat([x, c], dim=1))
        return self.to_mu(h), (self.to_logvar(h) if self.variational else None)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decoder(z if c is None else torch.cat([z, c], dim=1))
        if self.cond_linear is not None:
            out = out + self.cond_linear(z, c)
        return out if self.linear is None else out + self.linear(z)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> Output:
        mu, logvar = self.encode(x, c)
        z = mu
        if logvar is not None:
            eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
            z = mu + torch.exp(0.5 * logvar) * eps
        return Output(self.decode(z, c), z, mu, logvar)


def build_model(config, input_dim: int, n_classes: int, output_activation: str, saved: dict | None = None) -> MLPAutoencoder:
    """The model described by a :class:`~surrogate.nn.config.TrainConfig`.

    With the linear path on, a CVAE of a simulated prior gets the conditioned path, other models
    the folded ``A z``. ``saved`` (a checkpoint's state dict) rebuilds what it holds instead, so
    runs saved before a default changed still load.
    """
    if saved is not None:
        linear = "linear.weight" in saved
        conditioned = "cond_linear.values" in saved or "cond_linear.factor" in saved  # factor: saved before it was sparse
    else:
        conditioned = getattr(config, "conditioned_path", False)
        linear = getattr(config, "resolved_linear_path", False) and not conditioned
    return MLPAutoencoder(
        kind=config.model,
        input_dim=input_dim,
        hidden_dims=tuple(config.hidden),
        latent_dim=config.latent,
        cond_dim=n_classes if config.model == "cvae" else 0,
        activation=config.activation,
        output_activation=output_activation,
        dropout=config.dropout,
        linear_path=linear,
        conditioned_path=conditioned,
    )


@torch.no_grad()
def init_linear_path(model: MLPAutoencoder, covariance) -> None:
    """Start the decoder at the best rank-K linear surrogate: ``A = V_K diag(sqrt(lambda_K))``, the MLP's output at zero."""
    import numpy as np

    lam, V = np.linalg.eigh(np.asarray(covariance, dtype=np.float64))
    top = np.argsort(lam)[::-1][: model.latent_dim]
    A = np.zeros((model.linear.out_features, model.latent_dim))
    A[:, : len(top)] = V[:, top] * np.sqrt(np.clip(lam[top], 0, None))
    model.linear.weight.copy_(torch.from_numpy(A))
    zero_output_layer(model)


@torch.no_grad()
def zero_output_layer(model: MLPAutoencoder) -> None:
    """The MLP's output layer at zero: the decoder starts as its linear path."""
    last = [m for m in model.decoder if isinstance(m, nn.Linear)][-1]
    last.weight.zero_()
    last.bias.zero_()
