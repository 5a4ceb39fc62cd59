"""Metrics against values computed by hand on small examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelpred.metrics import (
    expected_calibration_error,
    is_constant,
    nrmse,
    parameter_distance,
    spearman,
    trial_metrics,
)


def test_parameter_distance_by_hand():
    theta_hat = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    theta_true = np.array([[3.0, 4.0], [1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(parameter_distance(theta_hat, theta_true), [5.0, 0.0, 2.0])


def test_parameter_distance_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        parameter_distance(np.zeros((3, 2)), np.zeros((3, 4)))


def test_nrmse_by_hand():
    # Errors 0, 0, −1, 1 give RMSE √0.5; the true range is 4 − 1 = 3.
    value = nrmse(np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 2.0, 4.0, 4.0]))
    assert value == pytest.approx(math.sqrt(0.5) / 3.0)


def test_nrmse_constant_truth_is_nan():
    assert math.isnan(nrmse(np.array([1.0, 2.0]), np.array([3.0, 3.0])))


def test_spearman_by_hand():
    # Ranks 1 2 3 4 against 1 3 2 4: Σd² = 2, so ρ = 1 − 6·2 / (4·(16 − 1)) = 0.8.
    assert spearman(
        np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 30.0, 20.0, 40.0])
    ) == pytest.approx(0.8)


def test_spearman_ties_match_scipy():
    pred = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 4.0])
    true = np.array([0.3, 0.1, 0.4, 0.4, 0.9, 0.5])
    assert spearman(pred, true) == pytest.approx(stats.spearmanr(pred, true).statistic)


def test_spearman_constant_side_is_nan():
    varying = np.array([0.1, 0.2, 0.3])
    constant = np.array([0.7, 0.7, 0.7])
    assert math.isnan(spearman(constant, varying))
    assert math.isnan(spearman(varying, constant))


def test_spearman_round_off_counts_as_constant():
    constant_up_to_round_off = 0.5 + np.array([0.0, 1e-17, -1e-17, 2e-16])
    assert is_constant(constant_up_to_round_off)
    assert math.isnan(spearman(constant_up_to_round_off, np.array([1.0, 2.0, 3.0, 4.0])))


def test_spearman_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        spearman(np.array([1.0]), np.array([2.0]))


def test_trial_metrics_per_trial_and_summary():
    trial = np.array([0, 0, 0, 1, 1, 1])
    size = np.array([5, 10, 15, 5, 10, 15])
    theta_true = np.zeros((6, 2))
    theta_hat = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    utility_true = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 4.0])
    utility_hat = np.array([1.0, 2.0, 3.0, 1.5, 1.0, 4.0])

    out = trial_metrics(trial, size, theta_true, utility_true, theta_hat, utility_hat)

    np.testing.assert_array_equal(out["trials"], [0, 1])
    np.testing.assert_allclose(out["distance"], [5.0 / 3.0, 1.0])
    # Trial 1: errors 0.5, −1, 0 over the range 3.
    np.testing.assert_allclose(out["nrmse"], [0.0, math.sqrt(1.25 / 3.0) / 3.0])
    # Trial 1 ranks 2 1 3 against 1 2 3: ρ = 1 − 6·2 / (3·8) = 0.5.
    np.testing.assert_allclose(out["spearman"], [1.0, 0.5])
    assert out["distance_mean"] == pytest.approx((5.0 / 3.0 + 1.0) / 2.0)
    assert out["spearman_mean"] == pytest.approx(0.75)
    assert out["spearman_std"] == pytest.approx(0.25)


def test_trial_metrics_without_theta_and_constant_prediction():
    trial = np.array([0, 0, 1, 1])
    utility_true = np.array([1.0, 2.0, 1.0, 3.0])
    out = trial_metrics(
        trial, np.array([1, 2, 1, 2]), np.zeros((4, 3)), utility_true, None, np.full(4, 2.0)
    )
    assert np.isnan(out["distance"]).all()
    assert math.isnan(out["spearman_mean"])
    # Trial 0: errors 1, 0 over the range 1. Trial 1: errors 1, −1 over the range 2.
    assert out["nrmse_mean"] == pytest.approx((math.sqrt(0.5) / 1.0 + 1.0 / 2.0) / 2.0)


def test_trial_metrics_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="utility_hat"):
        trial_metrics(
            np.array([0, 0]), np.array([1, 2]), np.zeros((2, 1)), np.ones(2), None, np.ones(3)
        )


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 1, 0])
    # One point per bin: |1 − 0.9| + |0 − 0.8| + |1 − 0.7| + |0 − 0.55| = 1.75 over 4 points.
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(1.75 / 4.0)
    # One bin: accuracy 0.5 against mean confidence 0.7375.
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(0.2375)


def test_ece_bin_edges_are_right_closed():
    # Confidences 0.7 and 0.65 share the bin (0.6, 0.7]: accuracy 0.5, confidence 0.675.
    probs = np.array([[0.3, 0.7], [0.35, 0.65]])
    assert expected_calibration_error(probs, np.array([1, 0]), n_bins=10) == pytest.approx(0.175)


def test_ece_perfectly_calibrated_is_zero():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 2])) == pytest.approx(0.0)


def test_ece_rejects_invalid_probabilities():
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(np.array([[1.5, -0.5]]), np.array([0]))
