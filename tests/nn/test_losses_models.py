import math

import numpy as np
import pytest
import torch
from torch import nn

from surrogate.errors import SurrogateError
from surrogate.nn.losses import kl_per_dim, kl_term, kl_weight, reconstruction
from surrogate.nn.models import MLPAutoencoder


def test_kl_matches_hand_computed_values():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 (s^2 + mu^2 - 1 - log s^2) per dimension
    expected = [0.5 * (1 + 1 - 1 - 0), 0.5 * (2 + 0 - 1 - math.log(2))]
    np.testing.assert_allclose(kl_per_dim(mu, logvar).numpy()[0], expected, rtol=1e-6)
    kl, train_kl = kl_term(mu, logvar)
    assert kl.item() == pytest.approx(sum(expected), rel=1e-6) == train_kl.item()


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(kl_term(mu, logvar)[0], expected)


def test_free_bits_floor_each_dimension():
    mu = torch.tensor([[0.1, 2.0], [0.1, 2.0]])
    logvar = torch.zeros(2, 2)
    kl, train_kl = kl_term(mu, logvar, free_bits=0.5)
    # dim 1 has KL 0.005 (< 0.5, floored), dim 2 has KL 2.0
    assert train_kl.item() == pytest.approx(0.5 + 2.0)
    assert kl[0].item() == pytest.approx(0.005 + 2.0)


def test_kl_warmup_is_linear():
    assert kl_weight(0, 100, 1.0, 2) == 0.0
    assert kl_weight(100, 100, 1.0, 2) == pytest.approx(0.5)
    assert kl_weight(500, 100, 2.0, 2) == 2.0
    assert kl_weight(0, 100, 0.5, 0) == 0.5


def test_reconstruction_losses_are_negative_log_likelihoods():
    torch.manual_seed(1)
    x, x_hat = torch.rand(4, 6), torch.rand(4, 6) * 0.98 + 0.01
    bce = -(x * torch.log(x_hat) + (1 - x) * torch.log(1 - x_hat)).sum(1)
    torch.testing.assert_close(reconstruction(x_hat, x, "bce"), bce)
    gauss = -torch.distributions.Normal(x_hat, 0.3).log_prob(x).sum(1)
    torch.testing.assert_close(reconstruction(x_hat, x, "gaussian", 0.3), gauss)


def test_decoder_is_a_plain_stack_and_condition_follows_z():
    model = MLPAutoencoder("cvae", 10, (8, 6), 3, 4, "tanh", "sigmoid")
    kinds = [type(m) for m in model.decoder]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear, nn.Sigmoid]
    assert [m.in_features for m in model.decoder if isinstance(m, nn.Linear)] == [7, 6, 8]
    z, c = torch.randn(2, 3), torch.eye(4)[:2]
    first = model.decoder[0]
    expected = torch.tanh(z @ first.weight[:, :3].T + c @ first.weight[:, 3:].T + first.bias)
    torch.testing.assert_close(model.decoder[1](first(torch.cat([z, c], 1))), expected)
    out = model(torch.rand(2, 10), c)
    assert out.x_hat.shape == (2, 10) and out.mu.shape == (2, 3) and out.logvar.shape == (2, 3)


def test_autoencoder_is_deterministic():
    model = MLPAutoencoder("ae", 10, (8,), 2, 0, "relu", "identity")
    x = torch.randn(3, 10)
    a, b = model(x), model(x)
    assert a.logvar is None
    torch.testing.assert_close(a.x_hat, b.x_hat)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latent_dim=0), "latent must be a positive integer, found 0"),
        (dict(activation="gelu"), "unknown activation 'gelu'; valid names: elu, relu, softplus, tanh"),
        (dict(hidden_dims=(8, 8, 8, 8, 8)), r"hidden must list 1 to 4 layer widths, found \[8, 8, 8, 8, 8\]"),
        (dict(cond_dim=0), "cond_dim must be > 0 exactly for a cvae, found 0 for cvae"),
    ],
)
def test_bad_model_settings(kwargs, message):
    args = dict(kind="cvae", input_dim=10, hidden_dims=(8,), latent_dim=2, cond_dim=3) | kwargs
    with pytest.raises(SurrogateError, match=message):
        MLPAutoencoder(**args)
