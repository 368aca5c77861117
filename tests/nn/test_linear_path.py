"""The conditioned linear path B L(c) z of a PriorCVAE: its closed form, its export, and the Stan
program's decoder against PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ENGINE

from surrogate.data.gp import GPPrior
from surrogate.decoder.io import validate_decoder_data
from surrogate.errors import SurrogateError
from surrogate.nn.config import TrainConfig
from surrogate.nn.export import decoder_stan_data, torch_decoder
from surrogate.nn.linear_path import KNOTS, SPARSE_TOL, auto_latent, conditioned_path
from surrogate.nn.models import MLPAutoencoder, build_model

PRIOR = GPPrior(1, 40, "matern52", (0.2, 0.6))


def path_model(latent=6, seed=0) -> MLPAutoencoder:
    """A small 1-D PriorCVAE with its conditioned path set and a non-zero MLP residual."""
    torch.manual_seed(seed)
    model = MLPAutoencoder("cvae", PRIOR.size, (16, 8), latent, 1, "elu", "identity", conditioned_path=True)
    model.cond_linear.set_path(conditioned_path(PRIOR.covariance, *PRIOR.lengthscale, latent))
    return model.double().eval()


def test_path_reproduces_the_projected_covariance():
    latent = 8
    path = conditioned_path(PRIOR.covariance, *PRIOR.lengthscale, latent)
    B, knots = path["basis"], path["knots"]
    assert B.shape == (40, latent) and path["values"].shape == (KNOTS, len(path["rows"])) and knots[0] == 0.2 and knots[-1] == 0.6
    np.testing.assert_allclose(B.T @ B, np.eye(latent), atol=1e-10)  # orthonormal
    model = path_model(latent)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()
        for ell in (knots[3], 0.2 + 0.5 * (knots[1] - knots[0]), 0.41, 0.6):
            K = PRIOR.covariance(ell)
            # the decoder is linear in z: its covariance is J J' with J its Jacobian
            J = torch.autograd.functional.jacobian(lambda z, ell=ell: model.decode(z, torch.full((1, 1), ell, dtype=torch.float64))[0],
                                                   torch.zeros(1, latent, dtype=torch.float64))[:, 0, :].numpy()  # fmt: skip
            error = np.linalg.norm(J @ J.T - K) / np.linalg.norm(K)
            projected = np.linalg.norm(B @ B.T @ K @ B @ B.T - K) / np.linalg.norm(K)
            assert error < projected + 2e-3, (ell, error, projected)  # the projection, up to interpolating between knots
            assert error < 0.01
    assert path["kept_share_min"] > 0.99  # K = 8 keeps 99% over the whole range (auto_latent's choice below)
    assert auto_latent(PRIOR.covariance, *PRIOR.lengthscale)["latent"] == 8


def test_interpolation_passes_the_knots_smoothly_and_is_flat_beyond():
    model = path_model()
    z = torch.randn(1, 6, dtype=torch.float64)
    path = model.cond_linear
    knots = path.knots

    def lin(c):
        return path(z, torch.tensor([[c]], dtype=torch.float64))

    for g in (0, 4, 31):
        torch.testing.assert_close(lin(float(knots[g]))[0], (path.factor()[g] @ z[0]) @ path.basis.T)  # through each knot
    # C1: the one-sided slopes at an interior knot agree (a linear interpolation's would jump)
    k, h = float(knots[7]), 1e-6
    left, right = (lin(k) - lin(k - h)) / h, (lin(k + h) - lin(k)) / h
    assert torch.allclose(left, right, atol=1e-4 * float(right.abs().max()))
    torch.testing.assert_close(lin(0.1), lin(0.2))
    torch.testing.assert_close(lin(0.9), lin(0.6))


def test_export_and_rebuilt_decoder():
    model = path_model()
    data = decoder_stan_data(model, "elu", "identity")
    nnz = len(model.cond_linear.rows)
    assert data["G"] == KNOTS and data["lin_nnz"] == nnz and data["lin_w"].shape == (KNOTS, nnz) and data["lin_basis"].shape == (40, 6)
    assert data["lin_u"][0] == 1 and data["lin_u"][-1] == nnz + 1 and len(data["lin_u"]) == 7 and 1 <= data["lin_v"].min() <= data["lin_v"].max() <= 6
    z, c = torch.randn(7, 6, dtype=torch.float64), 0.2 + 0.4 * torch.rand(7, 1, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(torch_decoder(data)(torch.cat([z, c], 1)), model.decode(z, c))
    path_keys = ("G", "lin_knots", "lin_nnz", "lin_w", "lin_v", "lin_u", "lin_basis")
    plain = validate_decoder_data({k: v for k, v in data.items() if k not in path_keys}, "old.json")
    assert plain["G"] == 0 and plain["lin_basis"].shape == (0, 0) and plain["lin_nnz"] == 0  # files from before the path read as none
    # files from before the factor was sparse (a dense lin_factor [G, K, K]) read as its lower triangle: the same decoder
    dense = model.cond_linear.factor().numpy()
    old = validate_decoder_data({k: v for k, v in data.items() if k not in ("lin_nnz", "lin_w", "lin_v", "lin_u")} | {"lin_factor": dense}, "old.json")
    assert old["lin_nnz"] == 21 and old["lin_u"].tolist() == [1, 2, 4, 7, 11, 16, 22]
    with torch.no_grad():
        torch.testing.assert_close(torch_decoder(old)(torch.cat([z, c], 1)), model.decode(z, c))
    with pytest.raises(SurrogateError, match=r"old.json: a linear path \(G = 32 knots\) needs a decoder conditioned on one value \(C = 1\), found C = 2"):
        validate_decoder_data(data | {"C": 2, "W1": np.zeros((data["H"][0], 8))}, "old.json")
    with pytest.raises(SurrogateError, match="lin_knots must increase in even steps"):
        validate_decoder_data(data | {"lin_knots": data["lin_knots"][::-1].copy()}, "d.json")
    with pytest.raises(SurrogateError, match="lin_knots must increase in even steps"):
        validate_decoder_data(data | {"lin_knots": data["lin_knots"] ** 2}, "d.json")
    with pytest.raises(SurrogateError, match=r"lin_basis has shape \(40, 5\), expected \(40, 6\)"):
        validate_decoder_data(data | {"lin_basis": data["lin_basis"][:, :5]}, "d.json")
    with pytest.raises(SurrogateError, match=rf"lin_w has shape \(32, {nnz - 1}\), expected \(32, {nnz}\)"):
        validate_decoder_data(data | {"lin_w": data["lin_w"][:, 1:]}, "d.json")
    with pytest.raises(SurrogateError, match=r"lin_v must hold columns 1..6, found 0..6"):
        validate_decoder_data(data | {"lin_v": data["lin_v"] - (data["lin_v"] == 1)}, "d.json")
    with pytest.raises(SurrogateError, match=rf"lin_u must rise from 1 to lin_nnz \+ 1 = {nnz + 1}"):
        validate_decoder_data(data | {"lin_u": data["lin_u"][::-1].copy()}, "d.json")
    with pytest.raises(SurrogateError, match="d.json has a linear path \\(G = 32\\) but lacks lin_v"):
        validate_decoder_data({k: v for k, v in data.items() if k != "lin_v"}, "d.json")


def test_sparse_factor_on_a_2d_grid():
    """In 2-D the shared basis nearly diagonalises every member of the range: the stored factor is a
    fraction of the lower triangle, and the decoder's covariance stays within SPARSE_TOL of the projection."""
    prior = GPPrior(2, 12, "matern52", (0.1, 0.5))
    latent = auto_latent(prior.covariance, *prior.lengthscale)["latent"]
    path = conditioned_path(prior.covariance, *prior.lengthscale, latent)
    sparse = path["sparse"]
    assert sparse["nnz"] < 0.2 * sparse["lower_triangle"] and sparse["max_rel_error"] <= SPARSE_TOL
    assert (np.diff(path["rows"]) >= 0).all() and {(i, i) for i in range(latent)} <= set(zip(path["rows"], path["cols"]))  # row order, diagonal kept
    module = MLPAutoencoder("cvae", prior.size, (8,), latent, 1, "elu", "identity", conditioned_path=True).double().cond_linear
    module.set_path(path)
    B = path["basis"]
    for ell in (float(path["knots"][5]), 0.1 + 0.5 * (path["knots"][1] - path["knots"][0]), 0.33):
        J = torch.autograd.functional.jacobian(lambda z, ell=ell: module(z, torch.full((1, 1), ell, dtype=torch.float64))[0],
                                               torch.zeros(1, latent, dtype=torch.float64))[:, 0, :].numpy()  # fmt: skip
        C = prior.covariance(ell)
        P = B @ B.T @ C @ B @ B.T  # the dense path's covariance at this ell (the projection)
        assert np.linalg.norm(J @ J.T - P) / np.linalg.norm(C) < SPARSE_TOL + 3e-3, ell  # the sparse pattern, up to interpolating between knots


def test_runs_saved_before_the_path_still_load():
    config = TrainConfig(dataset="gp1d", grid=40, model="cvae", lengthscale=(0.2, 0.6), hidden=(16, 8), latent=6)
    assert build_model(config, 40, 1, "identity").cond_linear is not None  # the default now
    old = MLPAutoencoder("cvae", 40, (16, 8), 6, 1, "elu", "identity")  # a PriorCVAE without a linear path
    rebuilt = build_model(config, 40, 1, "identity", saved=old.state_dict())
    assert rebuilt.cond_linear is None and rebuilt.linear is None
    rebuilt.load_state_dict(old.state_dict())
    # a path saved with the dense factor [G, K, K] of earlier versions loads as its lower triangle: the same decoder
    model = path_model()
    saved = {k: v for k, v in model.state_dict().items() if k not in ("cond_linear.rows", "cond_linear.cols", "cond_linear.values")}
    saved["cond_linear.factor"] = model.cond_linear.factor()
    rebuilt = build_model(config, 40, 1, "identity", saved=saved).double()
    rebuilt.load_state_dict(saved)
    assert len(rebuilt.cond_linear.rows) == 21
    z, c = torch.randn(4, 6, dtype=torch.float64), torch.tensor([[0.25], [0.3], [0.45], [0.6]], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval().decode(z, c), model.decode(z, c))


def test_latent_auto_needs_a_simulated_prior():
    from click.testing import CliRunner

    from surrogate.cli import main

    result = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--latent", "auto", "--out", "unused"])
    assert result.exit_code != 0 and "latent 'auto' needs a simulated prior (a GP dataset or a spatial prior)" in result.output and "found dataset mnist" in result.output


@pytest.mark.stan
def test_stan_decoder_with_the_path_matches_pytorch():
    """gp_surrogate.stan's field at given (z, ell) equals the PyTorch decoder's, linear path included."""
    from surrogate.inference import SamplerSettings, get_engine
    from surrogate.tasks.gp_fit import observation_data, simulate, validate_data

    model = path_model()
    decoder = decoder_stan_data(model, "elu", "identity")
    data = validate_data(simulate(dim=1, grid=40, lengthscale=0.3, observed=0.3, likelihood="poisson", seed=2))
    sdata = {**decoder, "ell_lower": 0.2, "ell_upper": 0.6, **observation_data(data)}
    rng = np.random.default_rng(1)
    z, ell = rng.standard_normal((3, 6)), np.array([0.21, 0.37, 0.59])
    inits = [{"z": z[i].tolist(), "ell": [float(ell[i])], "intercept": 0.0} for i in range(3)]
    fit = get_engine(ENGINE).run("gp_surrogate", sdata, SamplerSettings(chains=3, warmup=0, draws=1, init=inits), fixed_param=True)
    with torch.no_grad():
        expected = model.decode(torch.from_numpy(z), torch.from_numpy(ell[:, None])).numpy()
    np.testing.assert_allclose(fit.draws["f"][:, 0], expected, atol=1e-8)


def test_default_training_keeps_the_path_alone(tmp_path):
    """A PriorCVAE of a Gaussian prior is its path alone (measured best): nothing is trained, not even the encoder (the
    export never uses it); --residual trains the MLP too, and a random GP variance (a scale mixture) turns it on."""
    from surrogate.nn.train import train

    base = dict(dataset="gp1d", grid=40, model="cvae", lengthscale=(0.2, 0.6), hidden=(16, 8), latent=8, epochs=2, batch_size=64,
                epoch_size=256, seed=1)  # fmt: skip
    config = TrainConfig(**base)
    assert config.conditioned_path and not config.resolved_residual
    assert TrainConfig(**base | {"variance": (0.5, 2.0)}).resolved_residual
    lines = []
    result = train(config, tmp_path / "path", log=lines.append, progress=False)
    model = result.model
    assert result.epochs_run == 0 and result.metrics == [] and any("nothing to train" in line for line in lines)
    assert torch.load(tmp_path / "path" / "checkpoint.pt", weights_only=False)["epoch"] == 0
    last = model.decoder[-1]
    assert float(last.weight.abs().max()) == 0.0 and float(last.bias.abs().max()) == 0.0
    run = train(TrainConfig(**base | {"residual": True}), tmp_path / "residual", log=lambda _: None, progress=False)
    last_epoch = torch.load(tmp_path / "residual" / "checkpoint.pt", weights_only=False)["model"]
    assert float(last_epoch[f"decoder.{len(model.decoder) - 1}.weight"].abs().max()) > 0  # the MLP was trained
    assert run.kept is not None and [row["epoch"] for row in run.metrics] == [1, 2]  # and scored: the best epoch is kept
    torch.testing.assert_close(model.cond_linear.values, run.model.cond_linear.values)  # the path itself is never trained
    with pytest.raises(SurrogateError, match="residual: saved False, given True"):
        train(TrainConfig(**base | {"residual": True, "epochs": 3}), tmp_path / "path", resume=True, log=lambda _: None, progress=False)


def test_a_zero_residual_is_exported_as_one_unit():
    model = path_model()
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()
    data = decoder_stan_data(model, "elu", "identity")
    assert (data["L"], data["H"], data["W_out"].shape) == (1, [1, 0, 0, 0], (40, 1))
    z, c = torch.randn(5, 6, dtype=torch.float64), 0.2 + 0.4 * torch.rand(5, 1, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(torch_decoder(data)(torch.cat([z, c], 1)), model.decode(z, c))


def test_a_capped_auto_latent_says_so(monkeypatch):
    """Where the targets (99% of the variance, 95% at every location) need more than MAX_AUTO_LATENT dimensions (a BYM2
    needs N - 1), latent auto says what the cap keeps and names the exact model, instead of claiming the targets."""
    import libpysal

    import surrogate.nn.linear_path as lp
    from surrogate.api.train import resolve_latent

    probe = TrainConfig(prior="bym2", map=libpysal.examples.get_path("sids2.shp"), id_column="FIPS", latent=1, model="vae")
    latent, message = resolve_latent("auto", probe)
    assert latent == 99 and "WARNING" not in message
    monkeypatch.setattr(lp, "MAX_AUTO_LATENT", 40)
    latent, message = resolve_latent("auto", probe)
    assert latent == 40 and "capped at 40" in message and "keep only" in message and "fit the exact model" in message
