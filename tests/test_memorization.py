"""Memorization and influence: leave-one-out against retraining, subsampling on planted effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression as SklearnLR

from modelpred import io, sampling
from modelpred.applications import memorization as mem
from modelpred.models import make_model
from modelpred.surrogate import SurrogateConfig, fit_surrogate

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- helpers


def write_tiny_workflow_files(tmp_path: Path, dataset: io.Dataset, permutations: int = 3):
    """Write data, samples and a one-epoch surrogate for ``dataset``; return their paths.

    Other application tests import this helper, so that every stage runs on
    real files in seconds.
    """
    data_path = tmp_path / "data.h5"
    io.write_dataset(data_path, dataset)
    model = make_model("lr", dataset.n_features, dataset.n_classes, 1.0)
    samples = sampling.sample_permutations(model, dataset, np.arange(permutations), seed=0)
    samples_path = tmp_path / "samples.h5"
    arrays = {name: samples[name] for name in sampling.SAMPLE_ARRAYS}
    io.write_arrays(samples_path, arrays, sampling.sample_attrs(model, 0, 10, permutations))
    items, _ = sampling.permuted_items(dataset)
    config = SurrogateConfig(hidden=8, layers=1, epochs=1, val_fraction=0.0, device="cpu")
    result = fit_surrogate(
        model,
        dataset.train.X,
        dataset.train.y,
        samples["permutations"],
        samples["theta"],
        config=config,
        one_class=samples["one_class"],
        X_test=dataset.test.X,
        y_test=dataset.test.y,
    )
    assert len(items) == samples["permutations"].shape[1]
    surrogate_path = tmp_path / "modelpred.pt"
    result.surrogate.save(surrogate_path)
    return data_path, samples_path, surrogate_path


def sklearn_confidence(X_fit, y_fit, x, label, lam=1.0):
    """Return the probability that scikit-learn's L2 logistic regression gives ``label`` at x."""
    fit = SklearnLR(C=1.0 / lam, tol=1e-12, max_iter=10000).fit(X_fit, y_fit)
    return float(fit.predict_proba(x[None, :])[0, list(fit.classes_).index(label)])


class PlantedModel:
    """A fake base model: θ is a mask, and including point k adds delta_k to its confidence.

    ``X`` rows are one-hot point identities, so θ · x picks the mask entry
    of that point. The probability of class 1 at point k is
    base_k + delta_k · [k ∈ S]; every point's label is 1.
    """

    n_classes = 2

    def __init__(self, base: np.ndarray, delta: np.ndarray):
        self.base = torch.as_tensor(base, dtype=torch.float64)
        self.delta = torch.as_tensor(delta, dtype=torch.float64)
        self.n_params = len(base)

    def predict_proba(self, theta, X):
        included = theta @ X.T  # (B, N): 1 where the point of column N is in subset B
        point = X.argmax(dim=1)  # (N,)
        p1 = self.base[point] + self.delta[point] * included
        return torch.stack([1 - p1, p1], dim=-1)

    def predict(self, theta, X):
        return (self.predict_proba(theta, X)[..., 1] > 0.5).long()


# --------------------------------------------------------------------------- leave-one-out


def test_leave_one_out_matches_retraining(iris):
    X, y = iris.train.X[:30], iris.train.y[:30]
    model = make_model("lr", iris.n_features, iris.n_classes, 1.0)
    loo = mem.leave_one_out(mem.solver_predictor(model, X, y), len(y), points=[0, 7, 19])
    values = mem.leave_one_out_memorization(model, loo, X, y)
    for value, i in zip(values, loo.points, strict=True):
        keep = np.arange(len(y)) != i
        expected = sklearn_confidence(X, y, X[i], y[i]) - sklearn_confidence(
            X[keep], y[keep], X[i], y[i]
        )
        assert value == pytest.approx(expected, abs=1e-6)


def test_leave_one_out_rejects_point_outside_d():
    with pytest.raises(ValueError, match="points must index the 5 points"):
        mem.leave_one_out(lambda masks: np.zeros((len(masks), 1)), 5, points=[5])


def test_solver_predictor_counts_repeated_points(iris):
    X, y = iris.train.X[:25], iris.train.y[:25]
    model = make_model("lr", iris.n_features, iris.n_classes, 1.0)
    counts = np.ones((1, len(y)), dtype=np.int64)
    counts[0, :5] = 2
    theta = mem.solver_predictor(model, X, y)(counts)[0]
    weights = counts[0].astype(np.float64)
    fit = SklearnLR(C=1.0, tol=1e-12, max_iter=10000).fit(X, y, sample_weight=weights)
    expected = np.r_[fit.coef_[0], fit.intercept_]
    np.testing.assert_allclose(theta, expected, atol=1e-5)


def test_counts_must_be_whole_and_nonnegative():
    with pytest.raises(ValueError, match="non-negative whole counts"):
        mem.as_counts(np.array([[0.5, 1.0]]), 2)
    with pytest.raises(ValueError, match="shape"):
        mem.as_counts(np.ones((1, 3)), 2)


# --------------------------------------------------------------------------- subsampling


def test_draw_subsets_equal_size_and_seeded():
    masks = mem.draw_subsets(50, 40, 0.7, seed=3)
    assert masks.shape == (40, 50)
    assert np.all(masks.sum(axis=1) == 35)
    np.testing.assert_array_equal(masks, mem.draw_subsets(50, 40, 0.7, seed=3))
    assert not np.array_equal(masks, mem.draw_subsets(50, 40, 0.7, seed=4))


def test_draw_subsets_rejects_degenerate_size():
    with pytest.raises(ValueError, match="subsets of 3 points"):
        mem.draw_subsets(3, 10, 0.9)


def test_subsampling_recovers_planted_confidence_effect():
    n = 30
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, n)
    delta = rng.uniform(0.0, 0.3, n)
    model = PlantedModel(base, delta)
    X = np.eye(n)
    y = np.ones(n, dtype=np.int64)

    def identity_predictor(masks):
        return np.asarray(masks, dtype=np.float64)

    estimate = mem.subsampling_memorization(
        identity_predictor,
        model,
        X,
        y,
        n_subsets=200,
        seed=0,
        X_eval=X,
        y_eval=y,
        score="confidence",
    )
    np.testing.assert_allclose(estimate.memorization, delta, atol=1e-12)
    # Point k's confidence moves only with k's own membership. Subsets of a
    # fixed size make k's membership depend on i's, so infl(i, k) is delta_k
    # times the difference of k's membership rates in subsets with and without i.
    masks = estimate.masks
    expected = np.empty((n, n))
    for i in range(n):
        with_i, without_i = masks[masks[:, i]], masks[~masks[:, i]]
        expected[i] = delta * (with_i.mean(axis=0) - without_i.mean(axis=0))
    np.testing.assert_allclose(estimate.influence, expected, atol=1e-12)
    np.testing.assert_allclose(np.diag(estimate.influence), delta, atol=1e-12)


def test_subsampling_recovers_planted_label_flip():
    n = 20
    planted = np.zeros(n, dtype=bool)
    planted[[2, 5, 11]] = True
    # Planted points are predicted correctly exactly when they are in the subset.
    model = PlantedModel(np.where(planted, 0.4, 0.9), np.where(planted, 0.2, 0.0))
    estimate = mem.subsampling_memorization(
        lambda masks: np.asarray(masks, dtype=np.float64),
        model,
        np.eye(n),
        np.ones(n, dtype=np.int64),
        n_subsets=100,
        seed=1,
    )
    np.testing.assert_array_equal(estimate.memorization, planted.astype(float))
    assert estimate.influence is None


def test_influence_needs_points_in_and_out():
    masks = np.array([[True, False], [True, True]])
    with pytest.raises(ValueError, match=r"points \[0\] are in every subset"):
        mem.influence_from_scores(masks, np.ones((2, 3)))


# --------------------------------------------------------------------------- removal curves


def test_rank_thresholds_remove_top_k():
    values = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2])
    thresholds = mem.rank_thresholds(values, n_thresholds=4, max_removed_fraction=0.5)
    removed = [(values > t).sum() for t in thresholds]
    assert removed == [0, 1, 2, 3]


def test_removal_curve_calls_accuracy_on_kept_points():
    values = np.array([0.3, 0.1, 0.2])
    seen = []

    def accuracy_of(keep):
        seen.append(keep.copy())
        return float(keep.sum())

    accuracy, removed = mem.removal_curve(values, np.array([0.3, 0.15]), accuracy_of)
    np.testing.assert_array_equal(removed, [0, 2])
    np.testing.assert_array_equal(accuracy, [3.0, 1.0])
    np.testing.assert_array_equal(seen[1], [False, True, False])


def test_threshold_grid_spans_common_scale():
    grid = mem.threshold_grid([np.linspace(0, 1, 11), np.linspace(0, 0.5, 11)], 5, 0.5)
    assert grid[-1] == pytest.approx(1.0)
    assert grid[0] == pytest.approx(0.5)


def test_nearest_to_levels_leaves_unreached_level_empty():
    chosen = mem.nearest_to_levels(np.array([0.0, 0.05, 0.45, 0.2]), [0.0, 0.5, 1.0], per_level=3)
    np.testing.assert_array_equal(chosen[0.0], [0, 1, 3])
    np.testing.assert_array_equal(chosen[0.5], [2])
    assert len(chosen[1.0]) == 0


def test_influence_pairs_order():
    influence = np.array([[0.1, -0.3, 0.5, 0.0], [0.2, 0.2, -0.1, 0.4]])
    pairs = mem.influence_pairs(np.array([0.2, 0.8]), influence, n_rows=2, per_side=2)
    assert [pair["train"] for pair in pairs] == [1, 0]
    np.testing.assert_array_equal(pairs[1]["high"], [2, 0])
    np.testing.assert_array_equal(pairs[1]["low"], [1, 3])


# --------------------------------------------------------------------------- stages and figures


def test_leave_one_out_stage_and_figure6(tmp_path, iris):
    data_path, _, surrogate_path = write_tiny_workflow_files(tmp_path, iris)
    summary = mem.run_leave_one_out_memorization(
        data_path,
        surrogate_path,
        tmp_path / "loo.h5",
        tmp_path / "loo.json",
        n_points=20,
        n_thresholds=4,
    )
    assert summary["solver_seconds"] > 0
    assert json.loads((tmp_path / "loo.json").read_text())["n_points"] == 20
    panel = mem.read_removal_panel(tmp_path / "loo.h5")
    assert set(panel.accuracy) == {"solver", "modelpred"}
    assert panel.x_axis == "removed"
    assert panel.n_removed["solver"][0, 0] == 0
    paths = mem.figure6([tmp_path / "loo.h5", tmp_path / "loo.h5"], tmp_path / "fig6")
    assert all(path.stat().st_size > 0 for path in paths)


def test_leave_one_out_stage_rejects_too_many_points(tmp_path, iris):
    data_path, _, surrogate_path = write_tiny_workflow_files(tmp_path, iris)
    with pytest.raises(ValueError, match="n_points = 500"):
        mem.run_leave_one_out_memorization(
            data_path, surrogate_path, tmp_path / "a.h5", tmp_path / "a.json", n_points=500
        )


def test_removal_panel_round_trip(tmp_path):
    panel = mem.RemovalPanel(
        title="Hymenoptera, NN",
        thresholds={"solver": np.array([0.5, 0.2]), "modelpred": np.array([0.4, 0.1])},
        accuracy={
            "solver": np.array([[0.8, 0.7], [0.82, 0.71]]),
            "modelpred": np.array([[0.8, 0.75]]),
        },
        n_removed={"solver": np.array([[0, 3], [0, 4]]), "modelpred": np.array([[0, 2]])},
        labels={"solver": "SGD solver, 50 subsets", "modelpred": "ModelPred, 1,000 subsets"},
        x_axis="threshold",
    )
    mem.write_removal_panel(tmp_path / "panel.h5", panel)
    back = mem.read_removal_panel(tmp_path / "panel.h5")
    np.testing.assert_array_equal(back.accuracy["solver"], panel.accuracy["solver"])
    assert back.labels == panel.labels
    assert back.full_accuracy is None


def test_influence_stage_and_digit_figures(tmp_path, iris):
    data_path, _, surrogate_path = write_tiny_workflow_files(tmp_path, iris)
    estimates = mem.run_influence(
        data_path,
        surrogate_path,
        tmp_path / "sub.h5",
        tmp_path / "sub.json",
        n_points=30,
        n_subsets=50,
        solver_subsets=40,
        score="confidence",
    )
    assert set(estimates) == {"modelpred", "solver"}
    estimate = estimates["modelpred"]
    assert estimate.influence.shape == (30, len(iris.test))
    arrays, _ = io.read_arrays(tmp_path / "sub.h5", ("estimators/solver/influence",))
    np.testing.assert_array_equal(
        arrays["estimators/solver/influence"], estimates["solver"].influence
    )
    summary = json.loads((tmp_path / "sub.json").read_text())
    assert summary["solver_subsets"] == 40
    assert -1 <= summary["memorization_spearman"] <= 1
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    paths = mem.figure7(
        estimate.memorization, iris.train.y[:30], images, [0, 0.5, 1], 4, tmp_path / "f7", title="t"
    )
    assert all(path.stat().st_size > 0 for path in paths)
    paths = mem.figure7(
        estimate.memorization,
        iris.train.y[:30],
        images,
        [0, 0.5, 1],
        4,
        tmp_path / "f7r",
        title="t",
        relative=True,
    )
    assert all(path.stat().st_size > 0 for path in paths)
    test_images = rng.integers(0, 256, size=(len(iris.test), 28, 28), dtype=np.uint8)
    paths = mem.figure10(
        estimate.memorization,
        estimate.influence,
        iris.train.y[:30],
        images,
        iris.test.y,
        test_images,
        tmp_path / "f10",
        n_rows=3,
        per_side=2,
        title="t",
    )
    assert all(path.stat().st_size > 0 for path in paths)


def test_influence_agreement_of_identical_estimates():
    influence = np.array([[0.5, 0.1, -0.2], [0.0, 0.3, 0.4]])
    estimate = mem.SubsamplingEstimate(np.zeros((1, 2), bool), np.array([0.2, 0.1]), influence, 1.0)
    summary = mem.influence_agreement(
        estimate, estimate, np.array([0, 1]), np.array([0, 1, 1]), top=1
    )
    assert summary["memorization_spearman"] == pytest.approx(1.0)
    assert summary["influence_pearson"] == pytest.approx(1.0)
    # Row 0's top test point (0) has label 0 like training point 0; row 1's (2) has label 1.
    assert summary["reference_top_same_label"] == pytest.approx(1.0)


def test_read_images_keeps_requested_order(tmp_path):
    images = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28).astype(np.uint8)
    io.write_arrays(tmp_path / "features.h5", {"images": images}, {})
    picked = mem.read_images(tmp_path / "features.h5", np.array([3, 0, 4]))
    np.testing.assert_array_equal(picked, images[[3, 0, 4]])


# --------------------------------------------------------------------------- workflow


@pytest.mark.slow
def test_application_targets_build_under_smoke_config(smoke_results):
    tmp_path = smoke_results
    targets = [
        "figures/fig6_memorization.png",
        "figures/fig7_memorization_examples.png",
        "figures/fig10_influence_pairs_mnist.pdf",
        "tables/table6_calibration.md",
        "figures/fig3_saliency.pdf",
        "tables/table4_param_changes.tex",
    ]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    csv = (tmp_path / "tables" / "table6_calibration.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,model,method")
    assert len(csv) == 1 + 3 * 3
