import json

import numpy as np
import pytest
import torch
from conftest import random_model

from surrogate.decoder.io import load_decoder, to_json_data, validate_decoder_data
from surrogate.errors import SurrogateError
from surrogate.nn.export import decoder_stan_data, torch_decoder


@pytest.mark.parametrize("hidden", [(9,), (9, 7), (9, 7, 5), (9, 7, 5, 3)])
def test_export_shapes_for_one_to_four_layers(hidden):
    model = random_model("cvae", hidden=hidden, latent=3, classes=4, input_dim=12)
    data = decoder_stan_data(model, "elu", "sigmoid")
    L = len(hidden)
    assert (data["K"], data["C"], data["D"], data["L"]) == (3, 4, 12, L)
    assert data["H"] == list(reversed(hidden)) + [0] * (4 - L)
    widths = [7, *data["H"]]
    for i in range(1, 5):
        assert data[f"W{i}"].shape == (data["H"][i - 1], widths[i - 1])
        assert data[f"b{i}"].shape == (data["H"][i - 1],)
    assert data["W_out"].shape == (12, hidden[0]) and data["b_out"].shape == (12,)
    # PyTorch's [out, in] orientation, bit for bit
    first = model.decoder[0]
    np.testing.assert_array_equal(data["W1"], first.weight.detach().double().numpy())


def test_rebuilt_torch_decoder_equals_the_model():
    model = random_model("cvae", hidden=(9, 7), activation="softplus")
    data = decoder_stan_data(model, "softplus", "sigmoid")
    x = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(torch_decoder(data)(x), model.double().decoder(x))


def test_json_round_trip(tmp_path):
    data = decoder_stan_data(random_model("vae", hidden=(6, 5)), "tanh", "identity")
    path = tmp_path / "d.json"
    path.write_text(json.dumps(to_json_data(data)))
    back, meta = load_decoder(path)
    assert meta == {} and back["C"] == 0 and back["W3"].shape == (0, 6)
    for key in ("W1", "b2", "W_out"):
        np.testing.assert_array_equal(back[key], data[key])


def test_exported_numbers_are_compact_and_the_decoder_unchanged(tmp_path):
    """decoder.json holds 9 significant digits: float32 weights round-trip exactly, float64 values move by < 1e-8."""
    import re

    from surrogate.decoder.io import compact_json

    data = decoder_stan_data(random_model("cvae", hidden=(6, 5)), "elu", "identity")
    data["W_out"] = data["W_out"] + np.random.default_rng(0).normal(0, 1e-3, data["W_out"].shape)  # float64 values
    path = tmp_path / "d.json"
    text = compact_json(data)
    path.write_text(text)
    digits = [len(m.group(1).replace(".", "").lstrip("0")) for m in re.finditer(r"-?([0-9.]+)(?:e[-+][0-9]+)?", text)]
    assert max(digits) == 9
    assert len(text) < 0.75 * len(json.dumps(to_json_data(data)))
    back, _ = load_decoder(path)
    np.testing.assert_array_equal(back["W1"].astype(np.float32), data["W1"].astype(np.float32))  # float32 weights: exact
    np.testing.assert_allclose(back["W_out"], data["W_out"], rtol=1e-8)


def good():
    return to_json_data(decoder_stan_data(random_model("cvae", hidden=(6, 5)), "elu", "sigmoid"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("W_out"), "lacks the decoder keys W_out"),
        (lambda d: d.update(K=0), "K must be an integer >= 1, found 0"),
        (lambda d: d.update(D=13), r"b_out has shape \(12,\), expected \(13,\)|W_out has shape \(12, 6\), expected \(13, 6\)"),
        (lambda d: d.update(H=[6, 5, 0, 0]), r"W1 has shape \(5, 7\), expected \(6, 7\)"),
        (lambda d: d.update(H=[5, 6, 3, 0]), r"H must hold L = 2 positive widths then zeros, found \[5, 6, 3, 0\]"),
        (lambda d: d["W2"][1].__setitem__(2, float("nan")), r"W2 has 1 non-finite values \(first at \[1, 2\]: nan\)"),
        (lambda d: d.update(hidden_activation=9), r"hidden_activation must be one of 1 \(elu\), .*, found 9"),
    ],
)
def test_validation_names_key_and_value(change, message):
    data = good()
    change(data)
    with pytest.raises(SurrogateError, match=message):
        validate_decoder_data(data, "d.json")


def test_load_rejects_non_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("not json")
    with pytest.raises(SurrogateError, match="x.json is not valid JSON"):
        load_decoder(path)
    with pytest.raises(SurrogateError, match="decoder file .*missing.json does not exist"):
        load_decoder(tmp_path / "missing.json")


@pytest.mark.parametrize("kind, cond, activation", [("vae", 0, "elu"), ("cvae", 1, "relu")])
def test_linear_path_folds_into_dense_layers(kind, cond, activation):
    """A z + MLP(z, c) exported as plain dense layers decodes the same values (the Stan programs are unchanged)."""
    from surrogate.nn.models import MLPAutoencoder, init_linear_path

    torch.manual_seed(0)
    model = MLPAutoencoder(kind, 12, (16, 8), 5, cond, activation, "identity", linear_path=True)
    cov = np.cov(np.random.default_rng(0).normal(size=(12, 40)))
    init_linear_path(model, cov)
    z = torch.randn(300, 5)
    c = torch.rand(300, cond) if cond else None
    lam = np.sort(np.linalg.eigvalsh(cov))[::-1]
    A = model.linear.weight.detach().double().numpy()
    np.testing.assert_allclose(np.linalg.eigvalsh(A @ A.T)[::-1][:5], lam[:5], rtol=1e-5)  # the top-5 Karhunen-Loeve basis
    assert torch.allclose(model.decode(z, c), model.linear(z))  # the MLP starts at zero
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    data = decoder_stan_data(model, activation, "identity")
    assert data["H"][:2] == [8 + 5, 16 + 5] and data["W_out"].shape == (12, 21)
    inputs = z if c is None else torch.cat([z, c], 1)
    with torch.no_grad():
        np.testing.assert_allclose(torch_decoder(data)(inputs.double()).numpy(), model.decode(z, c).double().numpy(), atol=2e-6)
