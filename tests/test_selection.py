"""Tests of data selection by Shapley values: curves, detection counts and files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from modelpred.applications import selection
from modelpred.models import make_model

N_TINY = 20


@pytest.fixture(scope="module")
def tiny(iris):
    """Twenty iris training points with three labels flipped, and the iris test split."""
    X, y = iris.train.X[:N_TINY], iris.train.y[:N_TINY].copy()
    flipped = np.array([2, 7, 11])
    y[flipped] = 1 - y[flipped]
    model = make_model("lr", iris.n_features, iris.n_classes)
    return model, X, y, iris.test.X, iris.test.y, flipped


def _direct_accuracy(model, X, y, X_test, y_test, kept):
    theta = model.fit(X[kept], y[kept])
    with torch.no_grad():
        return float(
            model.accuracy(
                torch.as_tensor(theta[None]), torch.as_tensor(X_test), torch.as_tensor(y_test)
            )[0]
        )


def test_curves_equal_direct_retraining(tiny):
    model, X, y, X_test, y_test, _ = tiny
    orders = np.stack([np.random.default_rng(seed).permutation(N_TINY) for seed in range(3)])
    removed = selection.removal_counts(N_TINY, max_removed=18, step=3)
    curves = selection.selection_curves(model, X, y, X_test, y_test, orders, removed)
    assert curves.shape == (3, len(removed))
    for b, order in enumerate(orders):
        for k, r in enumerate(removed):
            kept = np.sort(order[r:])
            assert curves[b, k] == _direct_accuracy(model, X, y, X_test, y_test, kept), (b, r)


def test_multiclass_curves_equal_direct_retraining():
    # Three well-separated classes in the plane, five points each.
    rng = np.random.default_rng(0)
    centres = np.array([[0.6, 0.0], [-0.3, 0.5], [-0.3, -0.5]])
    y = np.repeat(np.arange(3), 5)
    X = centres[y] + 0.2 * rng.normal(size=(15, 2))
    y_test = np.repeat(np.arange(3), 4)
    X_test = centres[y_test] + 0.2 * rng.normal(size=(12, 2))
    model = make_model("lr", 2, 3)
    orders = np.stack([rng.permutation(15) for _ in range(2)])
    removed = [0, 4, 8, 12]
    curves = selection.selection_curves(model, X, y, X_test, y_test, orders, removed)
    for b, order in enumerate(orders):
        for k, r in enumerate(removed):
            kept = np.sort(order[r:])
            assert curves[b, k] == _direct_accuracy(model, X, y, X_test, y_test, kept), (b, r)


def test_one_class_kept_set_uses_zero_theta(tiny):
    model, X, y, X_test, y_test, _ = tiny
    # Remove every class-1 point first, so the last kept sets hold class 0 only.
    order = np.r_[np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]]
    removed = [int((y == 1).sum())]
    curve = selection.selection_curves(model, X, y, X_test, y_test, order[None], removed)
    assert curve[0, 0] == pytest.approx(np.mean(y_test == 0))


def test_removal_counts_end_at_max():
    np.testing.assert_array_equal(selection.removal_counts(10, 7, 3), [0, 3, 6, 7])
    np.testing.assert_array_equal(selection.removal_counts(10, 6, 3), [0, 3, 6])
    with pytest.raises(ValueError, match="at least one point must remain"):
        selection.removal_counts(10, 10, 1)


def test_removal_order_breaks_ties_by_index():
    np.testing.assert_array_equal(
        selection.removal_order(np.array([0.5, -1.0, 0.5, -1.0])), [1, 3, 0, 2]
    )
    with pytest.raises(ValueError, match="finite vector"):
        selection.removal_order(np.array([0.0, np.nan]))


def test_flipped_in_lowest_counts_first_tenth():
    order = np.arange(30)[::-1]  # points 29, 28, 27 are the lowest 10%
    assert selection.flipped_in_lowest(order, np.array([29, 27, 0])) == 2
    assert selection.flipped_in_lowest(order, np.array([0, 1])) == 0
    # The lowest 10% of 25 points are ⌈2.5⌉ = 3 points.
    assert selection.flipped_in_lowest(np.arange(25), np.array([0, 1, 2]), 0.1) == 3


def test_random_orders_are_seeded_permutations():
    first = selection.random_orders(0, 12, 4)
    assert first.shape == (4, 12)
    np.testing.assert_array_equal(np.sort(first, axis=1), np.tile(np.arange(12), (4, 1)))
    np.testing.assert_array_equal(selection.random_orders(0, 12, 2), first[:2])


def test_curves_reject_incomplete_order(tiny):
    model, X, y, X_test, y_test, _ = tiny
    with pytest.raises(ValueError, match="each of the 20 training points once"):
        selection.selection_curves(
            model, X, y, X_test, y_test, np.zeros((1, N_TINY), dtype=int), [0]
        )


def _result(tiny, seed_offset=0):
    model, X, y, X_test, y_test, flipped = tiny
    rng = np.random.default_rng(seed_offset)
    # Values that rank the flipped points lowest for "modelpred" and at random for "solver".
    perfect = rng.normal(size=N_TINY)
    perfect[flipped] -= 10
    values = {"modelpred": perfect, "solver": rng.normal(size=N_TINY)}
    removed = selection.removal_counts(N_TINY, 10, 2)
    curves, detected = selection.run_selection(
        model, X, y, X_test, y_test, values, flipped, removed, random_count=4, seed=seed_offset
    )
    return selection.SelectionResult(
        dataset=f"iris-flip{seed_offset}",
        n_train=N_TINY,
        removed=removed,
        values=values,
        curves=curves,
        flipped=flipped,
        detected=detected,
        lowest_fraction=0.1,
        permutations={"modelpred": 1000, "solver": 50},
        seconds={"modelpred": 1.0, "solver": 2.0},
    )


def test_run_selection_detects_ranked_flips(tiny):
    result = _result(tiny)
    assert result.detected["modelpred"] == 2  # ⌈0.1 · 20⌉ = 2 lowest points, both flipped
    assert result.curves["random"].shape == (4, len(result.removed))
    assert result.curves["modelpred"].shape == (1, len(result.removed))
    assert 0 <= result.detected["random"] <= 2


def test_selection_file_round_trip(tmp_path, tiny):
    result = _result(tiny)
    path = tmp_path / "selection.h5"
    selection.write_selection(path, result, {"seed": 0})
    back = selection.read_selection(path)
    assert back.dataset == result.dataset
    assert back.n_train == N_TINY
    np.testing.assert_array_equal(back.curves["random"], result.curves["random"])
    np.testing.assert_array_equal(back.values["modelpred"], result.values["modelpred"])
    assert back.detected == result.detected
    assert back.permutations == {"modelpred": 1000, "solver": 50}


def test_figure5_and_detection_csv(tmp_path, tiny):
    panels = {"iris": [_result(tiny, 0), _result(tiny, 1)]}
    paths = selection.figure5(panels, tmp_path / "fig5")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    selection.write_detection_csv(tmp_path / "fig5.csv", panels)
    table = pd.read_csv(tmp_path / "fig5.csv")
    assert list(table.columns) == list(selection.DETECTION_COLUMNS)
    assert len(table) == 2 * 3
    modelpred = table[table["method"] == "modelpred"]
    assert modelpred["flipped_in_lowest"].eq(2).all()
    assert table["expected_by_chance"].iloc[0] == pytest.approx(3 * 2 / 20)
