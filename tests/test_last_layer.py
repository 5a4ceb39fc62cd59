"""The nn base model: objective and gradient, determinism, order independence, batched fits."""

import json

import numpy as np
import pytest
import torch

from modelpred import io, sampling
from modelpred.models import LastLayerNN, LogisticRegression, make_model, model_from_config
from modelpred.surrogate import train_surrogate


def make_points(n=30, d=6, n_classes=2, seed=0):
    """Return features of norm at most 1 and labels that contain every class."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1).max()
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    return X, y.astype(np.int64)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_matches_autograd(n_classes):
    X, y = make_points(n_classes=n_classes)
    model = LastLayerNN(X.shape[1], n_classes, lam=0.7)
    rng = np.random.default_rng(1)
    theta = torch.tensor(rng.normal(size=(4, model.n_params)), requires_grad=True)
    mask = torch.tensor(rng.integers(0, 2, size=(4, len(y))), dtype=torch.float64)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    objective = model.objective(theta, Xt, yt, mask).sum()
    (autograd,) = torch.autograd.grad(objective, theta)
    closed_form = model.gradient(theta.detach(), Xt, yt, mask)
    X1 = torch.cat([Xt, torch.ones_like(Xt[:, :1])], dim=1)
    fast = model._fast_gradient(theta.detach().clone(), X1, yt, mask)

    assert torch.allclose(closed_form, autograd, rtol=1e-10, atol=1e-12)
    assert torch.allclose(fast, autograd, rtol=1e-10, atol=1e-12)


def test_objective_is_lr_objective():
    X, y = make_points()
    nn_model = LastLayerNN(X.shape[1], 2)
    lr_model = LogisticRegression(X.shape[1], 2)
    theta = np.random.default_rng(2).normal(size=(3, nn_model.n_params))
    mask = np.ones((3, len(y)))
    assert np.array_equal(
        nn_model.numpy_eval("objective", theta, X, y, mask),
        lr_model.numpy_eval("objective", theta, X, y, mask),
    )


def test_fit_is_deterministic():
    X, y = make_points()
    model = LastLayerNN(X.shape[1], 2)
    first = model.fit(X, y)
    second = LastLayerNN(X.shape[1], 2).fit(X, y)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_fit_ignores_order_of_points(n_classes):
    X, y = make_points(n_classes=n_classes)
    model = LastLayerNN(X.shape[1], n_classes)
    order = np.random.default_rng(3).permutation(len(y))
    assert np.array_equal(model.fit(X, y), model.fit(X[order], y[order]))


def test_fit_reaches_penalised_optimum():
    X, y = make_points()
    theta = LastLayerNN(X.shape[1], 2).fit(X, y)
    optimum = LogisticRegression(X.shape[1], 2).fit(X, y)
    assert np.linalg.norm(theta - optimum) < 1e-3


def test_fewer_steps_stop_short_of_optimum():
    X, y = make_points()
    theta = LastLayerNN(X.shape[1], 2, steps=20).fit(X, y)
    optimum = LogisticRegression(X.shape[1], 2).fit(X, y)
    assert np.linalg.norm(theta - optimum) > 1e-2


def test_one_class_subset_gives_zero():
    X, y = make_points()
    model = LastLayerNN(X.shape[1], 2)
    members = y == 1
    assert np.array_equal(model.fit(X[members], y[members]), np.zeros(model.n_params))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_prefixes_match_single_fits(n_classes):
    X, y = make_points(n=16, n_classes=n_classes)
    model = LastLayerNN(X.shape[1], n_classes)
    rng = np.random.default_rng(4)
    permutations = np.stack([rng.permutation(len(y)) for _ in range(2)])
    fits = model.fit_prefixes(X, y, permutations)

    assert fits.theta.shape == (2, len(y), model.n_params)
    for b in range(2):
        for i in range(len(y)):
            members = permutations[b, : i + 1]
            expected = model.fit(X[members], y[members])
            assert np.allclose(fits.theta[b, i], expected, rtol=0, atol=1e-12)
            assert fits.one_class[b, i] == (len(np.unique(y[members])) < n_classes)
    # Both permutations end with the whole set.
    assert np.allclose(fits.theta[0, -1], fits.theta[1, -1], rtol=0, atol=1e-14)
    assert np.all(fits.theta[fits.one_class] == 0)


def test_prefixes_record_kkt_residual():
    X, y = make_points(n=12)
    model = LastLayerNN(X.shape[1], 2)
    permutation = np.random.default_rng(5).permutation(len(y))[None]
    fits = model.fit_prefixes(X, y, permutation)
    last = fits.theta[0, -1]
    gradient = model.numpy_eval("gradient", last, X, y, np.ones(len(y)))
    assert np.isclose(fits.kkt_residual[0, -1], np.linalg.norm(gradient), rtol=1e-6, atol=1e-12)
    assert fits.converged[0, -1]


def test_prefixes_with_fixed_points():
    X, y = make_points(n=14)
    model = LastLayerNN(X.shape[1], 2)
    fixed = np.array([0, 1])
    permutation = np.arange(2, 14)[None]
    fits = model.fit_prefixes(X, y, permutation, fixed=fixed)
    members = np.r_[fixed, permutation[0, :5]]
    assert np.allclose(fits.theta[0, 4], model.fit(X[members], y[members]), rtol=0, atol=1e-12)


def test_fit_masks_matches_fit():
    X, y = make_points()
    model = LastLayerNN(X.shape[1], 2)
    masks = np.random.default_rng(6).random((3, len(y))) < 0.6
    masks[2] = y == 0  # one class only
    theta = model.fit_masks(X, y, masks)
    for row in range(2):
        assert np.allclose(theta[row], model.fit(X[masks[row]], y[masks[row]]), rtol=0, atol=1e-12)
    assert np.array_equal(theta[2], np.zeros(model.n_params))


def test_registered_and_rebuilt_from_config():
    model = make_model("nn", 5, 2, lam=0.5, steps=300)
    assert isinstance(model, LastLayerNN)
    rebuilt = model_from_config(model.config())
    assert rebuilt.config() == model.config()
    assert rebuilt.steps == 300


def test_surrogate_stage_keeps_sampled_steps(tmp_path):
    X, y = make_points(n=12, d=4)
    dataset = io.Dataset(
        train=io.Split(X, y),
        test=io.Split(X[:4], y[:4]),
        pool=io.Split(X[:0], y[:0]),
        attrs={"dataset": "toy", "n_classes": 2, "source": "synthetic", "source_sha256": "0" * 64},
    )
    io.write_dataset(tmp_path / "toy.h5", dataset)
    model = make_model("nn", 4, 2, lam=1.0, steps=40)
    indices = np.arange(3)
    samples = sampling.sample_permutations(model, io.read_dataset(tmp_path / "toy.h5"), indices, 0)
    sampling.write_shard(tmp_path / "samples.h5", samples, sampling.sample_attrs(model, 0, 25, 3))
    sidecar = tmp_path / "nn.json"
    train_surrogate(
        tmp_path / "toy.h5",
        tmp_path / "samples.h5",
        "paralearn",
        {"hidden": 4, "layers": 1, "epochs": 1, "val_fraction": 0.0},
        tmp_path / "nn.pt",
        sidecar,
    )
    assert json.loads(sidecar.read_text())["base_model"]["steps"] == 40


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\), got 1.0"),
        ({"learning_rate": -1.0}, "learning_rate must be positive, got -1.0"),
    ],
)
def test_invalid_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        LastLayerNN(4, 2, **options)
