"""Parameter saliency: leave-one-out changes against direct refits, L1 selection, Table IV."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SklearnLR
from test_memorization import write_tiny_workflow_files

from modelpred import io
from modelpred.applications import saliency as sal
from modelpred.applications.memorization import solver_predictor
from modelpred.data.variants import apply_label_noise
from modelpred.models import make_model


def sklearn_theta(X, y):
    """Return θ of scikit-learn's binary L2 logistic regression with C = 1 in our layout (w, b)."""
    fit = SklearnLR(C=1.0, tol=1e-12, max_iter=10000).fit(X, y)
    return np.r_[fit.coef_[0], fit.intercept_]


def test_solver_changes_equal_direct_refits(iris):
    X, y = iris.train.X[:25], iris.train.y[:25]
    model = make_model("lr", iris.n_features, iris.n_classes, 1.0)
    changes, seconds = sal.leave_one_out_changes(solver_predictor(model, X, y), len(y))
    assert changes.shape == (25, model.n_params)
    assert seconds > 0
    full = sklearn_theta(X, y)
    for i in (0, 9, 24):
        keep = np.arange(len(y)) != i
        np.testing.assert_allclose(changes[i], sklearn_theta(X[keep], y[keep]) - full, atol=1e-5)


def test_multiclass_changes_equal_direct_refits():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 3)) / 3
    y = np.arange(24) % 3
    model = make_model("lr", 3, 3, 1.0)
    changes, _ = sal.leave_one_out_changes(solver_predictor(model, X, y), len(y))
    full = model.fit(X, y)
    for i in (1, 17):
        keep = np.arange(len(y)) != i
        np.testing.assert_allclose(changes[i], model.fit(X[keep], y[keep]) - full, atol=1e-10)


def test_l1_selection_maps_coefficients_to_theta_layout():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] > 0).astype(int) + (X[:, 3] > 0.5).astype(int)
    selected = sal.l1_selected_parameters(X, y, 3, C=0.05, seed=0)
    fit = SklearnLR(l1_ratio=1.0, C=0.05, solver="saga", tol=1e-6, max_iter=10000, random_state=0)
    rows, features = np.nonzero(fit.fit(X, y).coef_)
    np.testing.assert_array_equal(selected, np.sort(rows * 6 + features))
    assert set(selected % 6) <= {0, 1, 2, 3, 4}


def test_l1_selection_binary_uses_single_row(iris):
    selected = sal.l1_selected_parameters(iris.train.X, iris.train.y, 2, C=10.0)
    assert len(selected) > 0
    assert selected.max() < iris.n_features


def test_choose_parameters_seeded_subset():
    selected = np.array([3, 8, 15, 40, 41, 99])
    shown = sal.choose_parameters(selected, 3, seed=2)
    assert len(shown) == 3
    assert set(shown) <= set(selected)
    np.testing.assert_array_equal(shown, sal.choose_parameters(selected, 3, seed=2))
    np.testing.assert_array_equal(sal.choose_parameters(selected, 10), selected)


def test_group_means_hand_example():
    changes = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0], [7.0, 40.0]])
    summary = sal.group_means(changes, np.array([0, 1]), np.array([1, 0]))
    np.testing.assert_allclose(summary["noisy_mean"], [15.0, 2.0])
    np.testing.assert_allclose(summary["good_mean"], [35.0, 6.0])
    np.testing.assert_allclose(summary["good_std"], [5.0, 1.0])


def test_parameter_label_names_class_and_feature():
    assert sal.parameter_label(135, 128, 10) == "θ135 (class 1, feature 6)"
    assert sal.parameter_label(4, 4, 2) == "θ4 (intercept)"


def test_saliency_stage_figure_and_table(tmp_path, iris):
    noisy = apply_label_noise(iris, {"first": 5, "holdout": True}, seed=0)
    data_path, _, surrogate_path = write_tiny_workflow_files(tmp_path, noisy)
    result = sal.run_saliency(data_path, surrogate_path, tmp_path / "sal.h5", l1_C=10.0, n_shown=2)
    np.testing.assert_array_equal(result.flipped, np.arange(5))
    assert result.changes["modelpred"].shape == result.changes["solver"].shape
    back, attrs = sal.read_saliency(tmp_path / "sal.h5")
    np.testing.assert_array_equal(back.shown, result.shown)
    np.testing.assert_array_equal(attrs["holdout"], np.arange(5))
    figure = sal.figure3(tmp_path / "sal.h5", tmp_path / "fig3")
    assert all(path.stat().st_size > 0 for path in figure)
    paths = sal.write_table4(tmp_path / "sal.h5", tmp_path / "table4_param_changes")
    with open(paths[0]) as handle:
        rows = list(csv.DictReader(handle))
    first = result.table_parameters[0]
    solver_rows = [row for row in rows if row["method"] == "solver"]
    assert solver_rows[0]["parameter"] == f"theta_{first}"
    expected = result.changes["solver"][5:, first].mean()
    assert float(solver_rows[0]["good_mean"]) == pytest.approx(expected)
    # Iris has no paper value; the paper's Table IV numbers belong to mnist.
    assert solver_rows[0]["paper_noisy"] == ""


def test_table4_pairs_mnist_columns_with_paper(tmp_path):
    changes = np.zeros((6, 129 * 10))
    arrays = {
        "changes/solver": changes,
        "changes/modelpred": changes,
        "selected": np.array([3, 7]),
        "shown": np.array([3]),
        "table_parameters": np.array([3, 7]),
        "flipped": np.array([0, 1]),
    }
    attrs = {
        "dataset": "mnist-flip20",
        "model": "lr",
        "n_features": 128,
        "n_classes": 10,
        "l1_C": 1.0,
        "seconds_solver": 1.0,
        "seconds_modelpred": 0.1,
    }
    io.write_arrays(tmp_path / "sal.h5", arrays, attrs)
    paths = sal.write_table4(tmp_path / "sal.h5", tmp_path / "table4_param_changes")
    with open(paths[0]) as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["paper_parameter"] == "theta_0"
    assert float(rows[0]["paper_noisy"]) == pytest.approx(-2.17e-03)
    assert float(rows[3]["paper_good"]) == pytest.approx(1.66e-03)


def test_saliency_rejects_l1_fit_without_weights(tmp_path, iris):
    data_path, _, surrogate_path = write_tiny_workflow_files(tmp_path, iris)
    with pytest.raises(ValueError, match="kept no weight"):
        sal.run_saliency(data_path, surrogate_path, tmp_path / "s.h5", l1_C=1e-6)
