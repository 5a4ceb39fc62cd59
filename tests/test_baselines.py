"""Influence-function and Datamodel baselines against retraining and planted utilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import Ridge

from modelpred.baselines import (
    Datamodel,
    InfluenceFunction,
    datamodel_predictor,
    influence_predictor,
    objective_hessian,
)
from modelpred.evaluation import single_thread, stacked_points
from modelpred.models import make_model
from modelpred.sampling import sample_permutations


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run the small solves on one thread, which is much faster than two on a busy machine."""
    with single_thread():
        yield


def _relative_errors(model, X, y, influence, masks):
    """Return ‖θ̂ − θ_exact‖ / ‖θ_exact − θ*‖ and ‖θ̂ − θ_exact‖ for each mask."""
    predicted = influence.predict(masks)
    exact = np.stack([model.fit(X[mask], y[mask]) for mask in masks])
    error = np.linalg.norm(predicted - exact, axis=1)
    change = np.linalg.norm(exact - influence.theta_start, axis=1)
    return error / change, error


@pytest.mark.parametrize("name", ["lr", "svm"])
def test_hessian_matches_autograd_of_objective(spam, name):
    model = make_model(name, spam.n_features, spam.n_classes)
    X, y = spam.train.X, spam.train.y
    theta = model.fit(X, y)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    mask = torch.ones(1, len(y), dtype=torch.float64)

    def objective(th):
        return model.objective(th[None], Xt, yt, mask)[0]

    expected = torch.autograd.functional.hessian(objective, torch.from_numpy(theta)).numpy()
    np.testing.assert_allclose(
        objective_hessian(model, theta, X, y), expected, rtol=1e-10, atol=1e-10
    )


def test_influence_close_to_leave_one_out(spam):
    model = make_model("lr", spam.n_features, spam.n_classes)
    X, y = stacked_points(spam)
    start = np.zeros(len(y), dtype=bool)
    start[: len(spam.train)] = True
    influence = InfluenceFunction(model, X, y, start)

    masks = np.repeat(start[None, :], 15, axis=0)
    masks[np.arange(15), np.arange(15) * 20] = False
    relative, _ = _relative_errors(model, X, y, influence, masks)

    assert np.median(relative) < 0.05
    assert relative.max() < 0.2


def test_influence_close_to_add_one(spam):
    model = make_model("lr", spam.n_features, spam.n_classes)
    X, y = stacked_points(spam)
    n_train = len(spam.train)
    start = np.zeros(len(y), dtype=bool)
    start[:n_train] = True
    influence = InfluenceFunction(model, X, y, start)

    masks = np.repeat(start[None, :], 10, axis=0)
    masks[np.arange(10), n_train + np.arange(10) * 7] = True
    relative, _ = _relative_errors(model, X, y, influence, masks)

    assert np.median(relative) < 0.05


def test_influence_error_grows_with_group_size(spam):
    model = make_model("lr", spam.n_features, spam.n_classes)
    X, y = stacked_points(spam)
    n_train = len(spam.train)
    start = np.zeros(len(y), dtype=bool)
    start[:n_train] = True
    influence = InfluenceFunction(model, X, y, start)
    rng = np.random.default_rng(0)

    def mean_error(k):
        masks = np.repeat(start[None, :], 8, axis=0)
        for row in masks:
            row[rng.choice(n_train, size=k, replace=False)] = False
        return _relative_errors(model, X, y, influence, masks)[1].mean()

    single = mean_error(1)
    fifth = mean_error(n_train // 5)
    assert fifth > 5 * single


def test_influence_svm_leave_one_out_total(spam):
    # Points outside the margin have zero loss gradient and do not move the
    # optimum, so the relative error is only meaningful summed over points.
    model = make_model("svm", spam.n_features, spam.n_classes)
    X, y = spam.train.X, spam.train.y
    start = np.ones(len(y), dtype=bool)
    influence = InfluenceFunction(model, X, y, start)
    masks = np.repeat(start[None, :], 20, axis=0)
    masks[np.arange(20), np.arange(20) * 15] = False
    _, error = _relative_errors(model, X, y, influence, masks)
    change = np.linalg.norm(
        np.stack([model.fit(X[m], y[m]) for m in masks]) - influence.theta_start, axis=1
    )
    assert error.sum() < 0.2 * change.sum()


def test_influence_multinomial_uses_pseudo_inverse():
    X, y = load_iris(return_X_y=True)
    X = X / np.linalg.norm(X, axis=1).max()
    model = make_model("lr", X.shape[1], 3)
    start = np.ones(len(y), dtype=bool)
    influence = InfluenceFunction(model, X, y, start)

    # Adding one constant to every class's intercept leaves the objective unchanged.
    assert influence.rank_deficiency == 1

    masks = np.repeat(start[None, :], 6, axis=0)
    masks[np.arange(6), [0, 25, 50, 75, 100, 125]] = False
    relative, _ = _relative_errors(model, X, y, influence, masks)
    assert np.median(relative) < 0.1

    intercepts = influence.predict(masks).reshape(6, 3, -1)[..., -1]
    np.testing.assert_allclose(intercepts.sum(axis=1), 0.0, atol=1e-10)


def test_influence_rejects_one_class_start():
    X, y = load_iris(return_X_y=True)
    X, y = X[:100], y[:100]
    model = make_model("lr", X.shape[1], 2)
    with pytest.raises(ValueError, match="lacks a class"):
        InfluenceFunction(model, X, y, y == 0)


def test_influence_predictor_per_row_start_sets(iris):
    model = make_model("lr", iris.n_features, iris.n_classes)
    X, y = stacked_points(iris)
    n_train = len(iris.train)
    first = np.zeros(len(y), dtype=bool)
    first[:n_train] = True
    second = first.copy()
    second[:10] = False
    starts = np.stack([first, first, second])
    masks = starts.copy()
    masks[[0, 2], n_train] = True
    masks[1, 20] = False

    output = influence_predictor(model, iris, starts)(X, y, masks)

    expected = [
        InfluenceFunction(model, X, y, start).predict(mask[None])[0]
        for start, mask in zip(starts, masks, strict=True)
    ]
    np.testing.assert_allclose(output["theta"], np.stack(expected), rtol=1e-12, atol=1e-12)
    assert output["utility"] is None


def _prefix_indicators(permutations: np.ndarray, n: int) -> np.ndarray:
    T, m = permutations.shape
    design = np.zeros((T, m, n))
    for t in range(T):
        for i in range(m):
            design[t, i, permutations[t, : i + 1]] = 1.0
    return design


def test_datamodel_recovers_planted_linear_utility():
    rng = np.random.default_rng(1)
    n, T = 30, 6
    permutations = np.stack([rng.permutation(n) for _ in range(T)])
    weights = rng.normal(size=n)
    intercept = 0.4
    utilities = _prefix_indicators(permutations, n) @ weights + intercept

    datamodel = Datamodel(alpha=1e-9).fit_prefixes(permutations, utilities, n)

    np.testing.assert_allclose(datamodel.coef_, weights, atol=1e-6)
    assert datamodel.intercept_ == pytest.approx(intercept, abs=1e-6)
    masks = rng.random((20, n)) < 0.5
    np.testing.assert_allclose(datamodel.predict(masks), masks @ weights + intercept, atol=1e-6)


def test_datamodel_matches_ridge_on_design_matrix():
    rng = np.random.default_rng(2)
    n, T = 25, 5
    permutations = np.stack([rng.permutation(n) for _ in range(T)])
    utilities = rng.normal(size=(T, n))
    design = _prefix_indicators(permutations, n).reshape(-1, n)

    datamodel = Datamodel(alpha=3.0).fit_prefixes(permutations, utilities, n)
    ridge = Ridge(alpha=3.0).fit(design, utilities.reshape(-1))

    np.testing.assert_allclose(datamodel.coef_, ridge.coef_, atol=1e-10)
    assert datamodel.intercept_ == pytest.approx(ridge.intercept_, abs=1e-10)


def test_datamodel_chooses_alpha_on_held_out_permutations():
    rng = np.random.default_rng(3)
    n, T = 30, 10
    permutations = np.stack([rng.permutation(n) for _ in range(T)])
    weights = rng.normal(size=n)
    utilities = _prefix_indicators(permutations, n) @ weights + rng.normal(scale=0.05, size=(T, n))

    datamodel = Datamodel().fit_prefixes(permutations, utilities, n)

    assert len(datamodel.alphas_) == 21
    assert datamodel.validation_mse_[datamodel.alpha_] == min(datamodel.validation_mse_.values())
    assert datamodel.alpha_ < 1.0
    np.testing.assert_allclose(datamodel.coef_, weights, atol=0.1)


def test_datamodel_fixed_points_must_stay():
    rng = np.random.default_rng(4)
    permutations = np.stack([rng.permutation(np.arange(5, 15)) for _ in range(4)])
    utilities = rng.normal(size=(4, 10))
    datamodel = Datamodel(alpha=1.0).fit_prefixes(permutations, utilities, 15, fixed=np.arange(5))
    masks = np.ones((2, 15), dtype=bool)
    masks[1, 7] = False

    assert datamodel.predict(masks).shape == (2,)
    assert np.all(datamodel.coef_[:5] == 0.0)
    masks[0, 2] = False
    with pytest.raises(ValueError, match="fixed training point"):
        datamodel.predict(masks)


def test_datamodel_predictor_on_samples(iris):
    model = make_model("lr", iris.n_features, iris.n_classes)
    samples = sample_permutations(model, iris, range(8), seed=0)
    predictor = datamodel_predictor(model, iris, samples)
    X, y = stacked_points(iris)
    n_train = len(iris.train)

    masks = np.zeros((3, len(y)), dtype=bool)
    masks[:, :n_train] = True
    masks[1, :10] = False
    masks[2, :30] = False
    output = predictor(X, y, masks)

    assert output["theta"] is None
    assert output["utility"].shape == (3,)
    assert np.all(np.isfinite(output["utility"]))

    masks[0, n_train] = True
    with pytest.raises(ValueError, match="pool points"):
        predictor(X, y, masks)
