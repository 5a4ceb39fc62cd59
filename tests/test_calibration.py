"""Calibration of bagging ensembles: ECE, bootstrap subsets, temperature scaling, Table VI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from test_memorization import write_tiny_workflow_files

from modelpred.applications import calibration as cal
from modelpred.applications.memorization import solver_predictor
from modelpred.metrics import expected_calibration_error
from modelpred.models import make_model


def test_ece_hand_computed_example():
    probs = np.array([[0.9, 0.1], [0.85, 0.15], [0.4, 0.6], [0.3, 0.7]])
    y = np.array([0, 1, 1, 1])
    # Bin (0.8, 0.9]: confidences 0.9 and 0.85, one correct: (2/4)·|0.5 − 0.875| = 0.1875.
    # Bin (0.5, 0.6]: confidence 0.6, correct: (1/4)·|1 − 0.6| = 0.1.
    # Bin (0.6, 0.7]: confidence 0.7, correct: (1/4)·|1 − 0.7| = 0.075.
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(0.3625)


def test_ensemble_average_matches_hand_sigmoid():
    model = make_model("lr", 1, 2, 1.0)
    theta = np.array([[2.0, 0.0], [0.0, 1.0]])  # rows (w, b)
    X = np.array([[0.5], [-1.0]])
    total = cal.summed_probabilities(model, theta, X)

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    p1 = np.array([sigmoid(1.0) + sigmoid(1.0), sigmoid(-2.0) + sigmoid(1.0)])
    np.testing.assert_allclose(total[:, 1], p1)
    np.testing.assert_allclose(total.sum(axis=1), [2.0, 2.0])


def test_bootstrap_counts_draws_with_replacement():
    counts = cal.bootstrap_counts(50, 200, ratio=0.6, seed=1, repeat=0)
    assert counts.shape == (200, 50)
    assert np.all(counts.sum(axis=1) == 30)
    assert counts.max() >= 2
    np.testing.assert_array_equal(counts, cal.bootstrap_counts(50, 200, 0.6, 1, 0))
    assert not np.array_equal(counts, cal.bootstrap_counts(50, 200, 0.6, 1, 1))
    distinct = cal.bootstrap_counts(50, 200, 0.6, 1, 0, duplicates="distinct")
    np.testing.assert_array_equal(distinct, np.minimum(counts, 1))


def test_regular_members_leave_out_one_class_prefixes():
    theta = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    one_class = np.array([[True, False, False], [True, True, False]])
    members = cal.regular_members(theta, one_class)
    np.testing.assert_array_equal(members, theta[[0, 0, 1], [1, 2, 2]])


def test_fit_temperature_recovers_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(20000, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # Labels drawn from softmax(logits / 2) make probs over-confident by exactly T = 2.
    calibrated = cal.temperature_scale(probs, 2.0)
    y = np.array([rng.choice(4, p=row) for row in calibrated])
    assert cal.fit_temperature(probs, y) == pytest.approx(2.0, rel=0.05)


def test_temperature_scale_keeps_predictions():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]])
    scaled = cal.temperature_scale(probs, 3.0)
    np.testing.assert_array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    np.testing.assert_allclose(cal.temperature_scale(probs, 1.0), probs)


def test_fit_temperature_needs_points():
    with pytest.raises(ValueError, match="0 points"):
        cal.fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int))


def test_one_class_predictions_are_dropped(iris):
    model = make_model("lr", iris.n_features, iris.n_classes, 1.0)
    regular = np.stack([model.fit(iris.train.X[:30], iris.train.y[:30])])
    result = cal.calibrate_ensembles(
        model,
        regular,
        lambda counts: np.zeros((len(counts), model.n_params)),
        len(iris.train),
        (iris.test.X, iris.test.y),
        (iris.pool.X, iris.pool.y),
        n_predicted=20,
        repeats=2,
    )
    np.testing.assert_array_equal(result.n_predicted, [0, 0])
    np.testing.assert_allclose(result.ece_modelpred, result.ece_regular)


def test_solver_members_enter_ensemble(iris):
    model = make_model("lr", iris.n_features, iris.n_classes, 1.0)
    X, y = iris.train.X, iris.train.y
    regular = np.stack([model.fit(X[:20], y[:20]), model.fit(X[20:], y[20:])])
    result = cal.calibrate_ensembles(
        model,
        regular,
        solver_predictor(model, X, y),
        len(y),
        (iris.test.X, iris.test.y),
        (iris.pool.X, iris.pool.y),
        n_predicted=3,
        repeats=1,
        seed=5,
    )
    counts = cal.bootstrap_counts(len(y), 3, 0.6, 5, 0)
    members = np.vstack([regular, solver_predictor(model, X, y)(counts)])
    probs = cal.summed_probabilities(model, members, iris.test.X) / len(members)
    assert result.ece_modelpred[0] == pytest.approx(expected_calibration_error(probs, iris.test.y))


def test_calibration_stage_and_table6(tmp_path, iris):
    data_path, samples_path, surrogate_path = write_tiny_workflow_files(tmp_path, iris)
    result = cal.run_calibration(
        data_path, samples_path, surrogate_path, tmp_path / "cal.h5", n_predicted=50, repeats=2
    )
    assert result.ece_modelpred.shape == (2,)
    back, attrs = cal.read_calibration(tmp_path / "cal.h5")
    assert back.ece_regular == pytest.approx(result.ece_regular)
    assert attrs["temperature_split"] == "pool"
    paths = cal.write_table6([tmp_path / "cal.h5"], tmp_path / "tables" / "table6_calibration")
    assert [path.suffix for path in paths] == [".csv", ".md", ".tex"]
    with open(paths[0]) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["regular", "modelpred", "modelpred_temperature"]
    assert float(rows[0]["ece_paper"]) == pytest.approx(0.0562)
    assert float(rows[1]["ece_paper_std"]) == pytest.approx(0.0002)
    assert "deviations.md" in paths[1].read_text()


def test_calibration_stage_rejects_test_split_for_temperature(tmp_path, iris):
    data_path, samples_path, surrogate_path = write_tiny_workflow_files(tmp_path, iris)
    with pytest.raises(ValueError, match="temperature_split"):
        cal.run_calibration(
            data_path, samples_path, surrogate_path, tmp_path / "c.h5", temperature_split="test"
        )
