"""The estimator facade ModelPred: arguments, fitted state, queries and the quick start."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.exceptions import NotFittedError

from modelpred import GroupEffect, ModelPred, unpack_theta
from modelpred.applications.shapley import solver_shapley, valuation_permutations

ROOT = Path(__file__).resolve().parent.parent

# Settings that keep one fit to about a second: 5 permutations of 40 points.
FAST = {"n_subsets": 200, "hidden": 16, "layers": 2, "epochs": 3}


def rescaled(X_train, *others):
    """Standardise on the training rows and divide by the largest training-row norm."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    parts = [(part - mean) / std for part in (X_train, *others)]
    largest = np.linalg.norm(parts[0], axis=1).max()
    return [part / largest for part in parts]


@pytest.fixture(scope="module")
def cancer():
    """40 training and 60 test points of breast cancer, six features, labels 0/1."""
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:40], order[40:100]
    X_train, X_test = rescaled(X[train][:, :6], X[test][:, :6])
    return X_train, y[train], X_test, y[test]


@pytest.fixture(scope="module")
def fitted(cancer):
    X_train, y_train, X_test, y_test = cancer
    return ModelPred(**FAST, random_state=0).fit(X_train, y_train, X_test, y_test)


# --------------------------------------------------------------------------- construction


def test_constructor_only_stores_arguments():
    estimator = ModelPred(base_model="no-such-model", lam=-1.0, epochs=0, random_state=7)
    assert estimator.base_model == "no-such-model"
    assert estimator.lam == -1.0
    assert estimator.random_state == 7
    assert not [name for name in vars(estimator) if name.endswith("_")]


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        ModelPred("lr")


def test_params_round_trip_through_sklearn_clone():
    from sklearn.base import clone

    estimator = ModelPred(lam=2.0, epochs=7, random_state=3)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert copy.set_params(lam=0.5).lam == 0.5
    with pytest.raises(ValueError, match=r"invalid parameters \['alpha'\] for ModelPred"):
        copy.set_params(alpha=1.0)


def test_repr_lists_changed_arguments():
    assert repr(ModelPred(lam=2.0, random_state=3)) == "ModelPred(lam=2.0, random_state=3)"


def test_fit_returns_self_with_fitted_state(cancer, fitted):
    X_train, y_train, _, _ = cancer
    n, d = X_train.shape
    assert fitted.classes_.tolist() == [0, 1]
    assert fitted.n_features_in_ == d
    assert fitted.n_params_ == d + 1
    assert fitted.seed_ == 0
    T = int(np.ceil(FAST["n_subsets"] / n))
    assert fitted.samples_["permutations"].shape == (T, n)
    assert fitted.samples_["theta"].shape == (T, n, d + 1)
    assert fitted.theta_full_.shape == (d + 1,)
    assert fitted.training_.best_epoch >= 1
    assert fitted.sampling_seconds_ > 0
    assert fitted.training_seconds_ > 0


def test_theta_full_is_the_solver_on_all_points(cancer, fitted):
    X_train, y_train, _, _ = cancer
    np.testing.assert_allclose(fitted.theta_full_, fitted.model_.fit(X_train, y_train), atol=1e-6)


@pytest.mark.parametrize(
    ("arguments", "data_change", "message"),
    [
        ({"base_model": "tree"}, None, r"base_model must be one of \['lr', 'svm'\], got 'tree'"),
        ({"lam": 0}, None, "lam must be a positive number, got 0"),
        ({"method": "other"}, None, "unknown surrogate method 'other'"),
        ({"n_permutations": 0}, None, "n_permutations must be an integer >= 1, got 0"),
        ({"surrogate_options": {"epochs": 5}}, None, r"surrogate_options sets \['epochs'\]"),
        (
            {"surrogate_options": {"lr_rate": 1.0}},
            None,
            r"unknown surrogate config keys \['lr_rate'\]",
        ),
        ({"random_state": -1}, None, "random_state must be a non-negative integer, got -1"),
        ({"random_state": "zero"}, None, "random_state must be None, a non-negative int"),
        ({}, "nan", "X has NaN or infinite values in 1 rows"),
        ({}, "one_class", "y has a single class"),
        ({}, "short_y", r"y must have shape \(40,\) to match X"),
        (
            {"base_model": "svm"},
            "three_classes",
            "base_model='svm' is binary only but y has 3 classes",
        ),
        ({}, "unseen_test_label", r"y_test has labels not seen in fit \(\[7\]\)"),
        ({}, "x_test_only", "pass X_test and y_test together, or neither"),
        ({"method": "utllearn"}, "no_test", "method 'utllearn' learns the test loss"),
    ],
)
def test_fit_rejects_invalid_input(cancer, arguments, data_change, message):
    X_train, y_train, X_test, y_test = (np.array(part) for part in cancer)
    if data_change == "nan":
        X_train[3, 1] = np.nan
    elif data_change == "one_class":
        y_train[:] = 1
    elif data_change == "short_y":
        y_train = y_train[:-1]
    elif data_change == "three_classes":
        y_train[:3] = 2
    elif data_change == "unseen_test_label":
        y_test[0] = 7
    elif data_change == "x_test_only":
        y_test = None
    elif data_change == "no_test":
        X_test = y_test = None
    with pytest.raises(ValueError, match=message):
        ModelPred(**{**FAST, **arguments}).fit(X_train, y_train, X_test, y_test)


def test_failed_refit_leaves_estimator_unfitted(cancer):
    X_train, y_train, X_test, y_test = cancer
    estimator = ModelPred(**FAST, random_state=0).fit(X_train, y_train, X_test, y_test)
    estimator.lam = -1.0
    with pytest.raises(ValueError, match="lam must be a positive number"):
        estimator.fit(X_train, y_train)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        estimator.predict(np.ones(len(y_train), dtype=bool))


def test_same_int_seed_gives_identical_predictions(cancer, fitted):
    X_train, y_train, X_test, y_test = cancer
    again = ModelPred(**FAST, random_state=0).fit(X_train, y_train, X_test, y_test)
    masks = np.random.default_rng(1).random((5, len(y_train))) < 0.5
    np.testing.assert_array_equal(again.predict(masks), fitted.predict(masks))
    np.testing.assert_array_equal(again.samples_["theta"], fitted.samples_["theta"])


def test_generator_random_state_draws_an_int_seed(cancer):
    X_train, y_train, _, _ = cancer
    estimator = ModelPred(**FAST, random_state=np.random.default_rng(5)).fit(X_train, y_train)
    assert estimator.seed_ == int(np.random.default_rng(5).integers(2**31 - 1))


def test_multiclass_lr_has_one_row_per_class():
    X, y = load_iris(return_X_y=True)
    rows = np.random.default_rng(0).permutation(len(y))[:30]
    (X_train,) = rescaled(X[rows])
    estimator = ModelPred(**FAST, random_state=0).fit(X_train, y[rows])
    assert estimator.n_params_ == 3 * (4 + 1)
    assert estimator.predict(np.ones((2, 30), dtype=bool)).shape == (2, 15)


def test_string_labels_map_to_sorted_classes(cancer):
    X_train, y_train, X_test, y_test = cancer
    names = np.array(["malignant", "benign"])
    estimator = ModelPred(**FAST, random_state=0).fit(
        X_train, names[y_train], X_test, names[y_test]
    )
    assert estimator.classes_.tolist() == ["benign", "malignant"]
    np.testing.assert_array_equal(estimator.y_train_, (names[y_train] == "malignant").astype(int))
    effect = estimator.group_addition(X_test[:3], names[y_test[:3]])
    assert effect.theta_after.shape == (7,)


# --------------------------------------------------------------------------- predictions


def test_predict_returns_one_theta_per_mask(fitted):
    masks = np.ones((4, 40), dtype=bool)
    masks[1, :20] = False
    assert fitted.predict(masks).shape == (4, 7)
    assert fitted.predict(masks[0]).shape == (1, 7)


def test_predict_gives_zero_for_subset_lacking_a_class(fitted):
    mask = fitted.y_train_ == 1
    np.testing.assert_array_equal(fitted.predict(mask), np.zeros((1, 7)))


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (np.ones((2, 39), dtype=bool), r"masks must have shape \(m, 40\)"),
        (np.full((1, 40), 2), "masks must be boolean or hold only 0 and 1"),
    ],
)
def test_predict_rejects_invalid_masks(fitted, masks, message):
    with pytest.raises(ValueError, match=message):
        fitted.predict(masks)


def test_predict_sets_agrees_with_masks(cancer, fitted):
    X_train, y_train, _, _ = cancer
    mask = np.zeros(40, dtype=bool)
    mask[::2] = True
    by_set = fitted.predict_sets([(X_train[mask], y_train[mask])])
    np.testing.assert_allclose(by_set, fitted.predict(mask), rtol=1e-5, atol=1e-6)


def test_predict_utility_scores_predicted_theta(cancer, fitted):
    _, _, X_test, y_test = cancer
    masks = np.ones((3, 40), dtype=bool)
    masks[2, 5:] = False
    theta = fitted.predict(masks)
    loss = fitted.model_.numpy_eval("utility", theta, X_test, y_test)
    np.testing.assert_allclose(fitted.predict_utility(masks), loss)


def test_unpack_theta_splits_coefficients_and_intercepts():
    theta = np.arange(2 * 3 * 5, dtype=float).reshape(2, 15)
    coef, intercept = unpack_theta(theta, 4)
    assert coef.shape == (2, 3, 4)
    np.testing.assert_array_equal(intercept[0], [4, 9, 14])
    with pytest.raises(ValueError, match="does not hold rows of d \\+ 1 = 4 values"):
        unpack_theta(np.zeros(7), 3)


def test_queries_before_fit_raise_not_fitted():
    with pytest.raises(NotFittedError, match=r"call fit\(X, y\) before querying it"):
        ModelPred().shapley_values()


# --------------------------------------------------------------------------- Shapley values


def test_solver_shapley_matches_library_function(cancer, fitted):
    X_train, y_train, X_test, y_test = cancer
    values = fitted.shapley_values(n_permutations=3, estimator="solver")
    permutations = valuation_permutations(fitted.seed_, 40, 3)
    run = solver_shapley(fitted.model_, X_train, y_train, X_test, y_test, permutations, [3])
    np.testing.assert_array_equal(values, run.values[-1])


def test_solver_shapley_values_are_efficient(cancer, fitted):
    _, _, X_test, y_test = cancer
    values = fitted.shapley_values(n_permutations=2, estimator="solver")
    loss = fitted.model_.numpy_eval(
        "utility", np.stack([fitted.theta_full_, np.zeros(7)]), X_test, y_test
    )
    # U = −loss, so the values sum to U(D) − U(∅) = loss(θ = 0) − loss(A(D)).
    assert values.sum() == pytest.approx(loss[1] - loss[0], abs=1e-7)


def test_surrogate_shapley_values_are_efficient(fitted):
    values, errors = fitted.shapley_values(n_permutations=4, return_std=True)
    loss_full = fitted.predict_utility(np.ones(40, dtype=bool))[0]
    loss_empty = fitted.predict_utility(np.zeros(40, dtype=bool))[0]
    assert values.shape == errors.shape == (40,)
    assert values.sum() == pytest.approx(loss_empty - loss_full, abs=1e-5)


def test_shapley_needs_a_test_set(cancer):
    X_train, y_train, _, _ = cancer
    estimator = ModelPred(**FAST, random_state=0).fit(X_train, y_train)
    with pytest.raises(ValueError, match="no test set: pass X_test and y_test"):
        estimator.shapley_values(n_permutations=2)


def test_shapley_rejects_unknown_estimator(fitted):
    with pytest.raises(ValueError, match=r"estimator must be one of \['surrogate', 'solver'\]"):
        fitted.shapley_values(estimator="exact")


# --------------------------------------------------------------------------- group effects


def test_group_deletion_reports_prediction_and_retraining(cancer, fitted):
    X_train, y_train, X_test, y_test = cancer
    rows = [3, 17, 25]
    effect = fitted.group_deletion(rows, check=True)
    keep = np.ones(40, dtype=bool)
    keep[rows] = False
    assert isinstance(effect, GroupEffect)
    np.testing.assert_array_equal(effect.theta_before, fitted.theta_full_)
    np.testing.assert_array_equal(effect.theta_after, fitted.predict(keep)[0])
    np.testing.assert_allclose(
        effect.theta_after_true, fitted.model_.fit(X_train[keep], y_train[keep])
    )
    loss = fitted.model_.numpy_eval("utility", effect.theta_after_true, X_test, y_test)
    assert effect.loss_after_true == pytest.approx(float(loss))
    assert effect.loss_before == pytest.approx(
        float(fitted.model_.numpy_eval("utility", fitted.theta_full_, X_test, y_test))
    )
    assert effect.parameter_error == pytest.approx(
        np.linalg.norm(effect.theta_after - effect.theta_after_true)
    )
    np.testing.assert_allclose(effect.theta_change, effect.theta_after - effect.theta_before)


def test_group_deletion_without_check_has_no_truth(fitted):
    effect = fitted.group_deletion(np.arange(40) < 5)
    assert effect.theta_after_true is None
    assert effect.parameter_error is None
    assert effect.theta_change_true is None


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([3, 40], r"rows \[40\] are not training points; indices run from 0 to 39"),
        ([3, 3], "rows lists a training point more than once"),
        (np.arange(40), "rows deletes every training point"),
        ([1.5], "rows must be integer indices of training points"),
    ],
)
def test_group_deletion_rejects_invalid_rows(fitted, rows, message):
    with pytest.raises(ValueError, match=message):
        fitted.group_deletion(rows)


def test_group_addition_retrains_on_the_union(cancer, fitted):
    X_train, y_train, X_test, y_test = cancer
    effect = fitted.group_addition(X_test[:5], y_test[:5], check=True)
    union = fitted.model_.fit(
        np.concatenate([X_train, X_test[:5]]), np.concatenate([y_train, y_test[:5]])
    )
    np.testing.assert_allclose(effect.theta_after_true, union)
    assert effect.theta_after.shape == (7,)


# ---------------------------------------------------------------- memorization, calibration


def test_solver_memorization_matches_definition(cancer, fitted):
    X_train, y_train, _, _ = cancer
    values = fitted.memorization(estimator="solver")
    assert values.shape == (40,)
    i = 4
    keep = np.arange(40) != i
    theta_without = fitted.model_.fit(X_train[keep], y_train[keep])
    probs = fitted.model_.numpy_eval(
        "predict_proba", np.stack([fitted.theta_full_, theta_without]), X_train[i : i + 1]
    )
    expected = probs[0, 0, y_train[i]] - probs[1, 0, y_train[i]]
    assert values[i] == pytest.approx(expected, abs=1e-6)


def test_subsampling_memorization_and_influence_shapes(cancer, fitted):
    _, _, X_test, y_test = cancer
    memorization = fitted.memorization(kind="subsampling", n_subsets=60)
    influence = fitted.influence(X_test[:7], y_test[:7], n_subsets=60)
    assert memorization.shape == (40,)
    assert np.all(np.abs(memorization) <= 1)
    assert influence.shape == (40, 7)


def test_memorization_rejects_unknown_kind(fitted):
    with pytest.raises(ValueError, match=r"kind must be one of \['leave_one_out', 'subsampling'\]"):
        fitted.memorization(kind="exact")


def test_calibration_ensemble_counts_members(fitted):
    result = fitted.calibration_ensemble(n_predicted=30, repeats=2)
    assert result.n_regular == int((~fitted.samples_["one_class"]).sum())
    assert np.isfinite(result.ece_regular)
    assert result.ece_modelpred.shape == (2,)
    assert np.all(result.n_predicted <= 30)


def test_utllearn_predicts_utility_only(cancer):
    X_train, y_train, X_test, y_test = cancer
    estimator = ModelPred(**FAST, method="utllearn", random_state=0).fit(
        X_train, y_train, X_test, y_test
    )
    assert estimator.predict_utility(np.ones((2, 40), dtype=bool)).shape == (2,)
    assert estimator.shapley_values(n_permutations=2).shape == (40,)
    with pytest.raises(ValueError, match="method='utllearn' predicts only the test loss"):
        estimator.predict(np.ones(40, dtype=bool))


# ------------------------------------------------------------------ package and quick start


def quickstart_snippet(text: str) -> str:
    """Return the Python block between the quick-start markers of a Markdown file."""
    match = re.search(
        r"<!-- quick-start -->\s*```python\n(.*?)```\s*<!-- /quick-start -->", text, re.S
    )
    assert match, "no ```python block between <!-- quick-start --> and <!-- /quick-start -->"
    return match.group(1)


def test_quickstart_snippet_runs(capsys):
    code = quickstart_snippet((ROOT / "docs" / "library.md").read_text())
    # The same code with fewer subsets and epochs, so the test takes seconds.
    for full, small in (("n_subsets=3000", "n_subsets=300"), ("epochs=200", "epochs=2")):
        assert code.count(full) == 1, f"the quick start no longer sets {full}"
        code = code.replace(full, small)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(code, "docs/library.md quick start", "exec"), {})
    finally:
        torch.set_num_threads(threads)
    assert re.match(
        r"test loss \d\.\d{4} -> \d\.\d{4} predicted, \d\.\d{4} retrained", capsys.readouterr().out
    )


def test_readme_quickstart_matches_docs():
    readme = (ROOT / "README.md").read_text()
    if "<!-- quick-start -->" not in readme:
        pytest.skip("README.md has no quick-start block yet")
    assert quickstart_snippet(readme) == quickstart_snippet(
        (ROOT / "docs" / "library.md").read_text()
    )


def test_package_import_loads_no_numerical_library():
    code = (
        "import sys, modelpred, modelpred.config; "
        "print(sorted(m for m in ('torch', 'numpy', 'h5py', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
