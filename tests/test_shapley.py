"""Tests of permutation-sampling Shapley values against exact enumeration and of their files."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from modelpred.applications import shapley
from modelpred.models import make_model
from modelpred.reporting.reference import load_paper_values
from modelpred.surrogate import SurrogateConfig, fit_surrogate

N_SMALL = 8


@pytest.fixture(scope="module")
def small(iris):
    """Eight iris training points (both classes present) and the iris test split."""
    X, y = iris.train.X[:N_SMALL], iris.train.y[:N_SMALL]
    assert len(np.unique(y)) == 2
    model = make_model("lr", iris.n_features, iris.n_classes)
    return model, X, y, iris.test.X, iris.test.y


def _subset_utility(model, X, y, X_test, y_test):
    def utility_of(subset):
        rows = list(subset)
        theta = model.fit(X[rows], y[rows]) if rows else np.zeros(model.n_params)
        return float(shapley.theta_utilities(model, theta, X_test, y_test))

    return utility_of


@pytest.fixture(scope="module")
def exact_values(small):
    model, X, y, X_test, y_test = small
    return shapley.exact_shapley(N_SMALL, _subset_utility(model, X, y, X_test, y_test))


def test_all_permutations_equal_exact(small, exact_values):
    # Averaging over all 8! orderings is the Shapley value itself, so the only
    # difference left is the solver's tolerance (gradient norm 1e-9).
    model, X, y, X_test, y_test = small
    every = np.array(list(itertools.permutations(range(N_SMALL))))
    run = shapley.solver_shapley(model, X, y, X_test, y_test, every, [len(every)], block=5040)
    np.testing.assert_allclose(run.values[0], exact_values, rtol=0, atol=1e-8)


def test_sampled_permutations_within_standard_error(small, exact_values):
    model, X, y, X_test, y_test = small
    T = 2000
    perms = shapley.valuation_permutations(0, N_SMALL, T)
    run = shapley.solver_shapley(model, X, y, X_test, y_test, perms, [T])
    error = np.abs(run.values[0] - exact_values)
    # Four standard errors bound each point's deviation with probability
    # above 0.9999 under the normal approximation; the seed is fixed anyway.
    assert np.all(error <= 4 * run.standard_error[0] + 1e-12)
    # The bound above is only a test if the standard errors are small.
    assert np.max(run.standard_error[0]) < 0.1 * np.max(np.abs(exact_values))


def test_exact_shapley_efficiency(small, exact_values):
    model, X, y, X_test, y_test = small
    utility_of = _subset_utility(model, X, y, X_test, y_test)
    full = utility_of(tuple(range(N_SMALL)))
    assert exact_values.sum() == pytest.approx(full - utility_of(()), abs=1e-12)


def test_checkpoints_match_direct_estimate(small):
    model, X, y, X_test, y_test = small
    perms = shapley.valuation_permutations(3, N_SMALL, 10)
    run = shapley.solver_shapley(model, X, y, X_test, y_test, perms, [3, 10], block=4)
    fits = model.fit_prefixes(X, y, perms)
    utilities = shapley.theta_utilities(model, fits.theta, X_test, y_test)
    empty = shapley.empty_utility(model, X_test, y_test)
    for index, T in enumerate((3, 10)):
        direct = shapley.shapley_from_prefix_utilities(perms[:T], utilities[:T], empty)
        np.testing.assert_allclose(run.values[index], direct, rtol=0, atol=1e-10)
    assert np.all(np.diff(run.seconds) >= 0)


def test_solver_values_sum_to_full_minus_empty(small):
    model, X, y, X_test, y_test = small
    perms = shapley.valuation_permutations(1, N_SMALL, 30)
    run = shapley.solver_shapley(model, X, y, X_test, y_test, perms, [30])
    full = float(shapley.theta_utilities(model, model.fit(X, y), X_test, y_test))
    empty = shapley.empty_utility(model, X_test, y_test)
    assert run.empty_utility == empty
    assert run.values[0].sum() == pytest.approx(run.full_utility[0] - empty, abs=1e-12)
    assert run.full_utility[0] == pytest.approx(full, abs=1e-9)


def test_accuracy_utility_of_empty_set(small):
    model, _, _, X_test, y_test = small
    # θ = 0 scores 0 for every point, which the binary model reads as class 0.
    expected = float(np.mean(y_test == 0))
    assert shapley.empty_utility(model, X_test, y_test, "accuracy") == pytest.approx(expected)


def test_unknown_utility_rejected(small):
    model, _, _, X_test, y_test = small
    with pytest.raises(ValueError, match="utility must be one of"):
        shapley.empty_utility(model, X_test, y_test, "auc")


@pytest.fixture(scope="module")
def surrogates(iris):
    """Tiny ModelPred and UtlLearn surrogates trained on 20 iris points."""
    model = make_model("lr", iris.n_features, iris.n_classes)
    X, y = iris.train.X[:20], iris.train.y[:20]
    perms = np.stack([np.random.default_rng([0, t]).permutation(20) for t in range(6)])
    theta = model.fit_prefixes(X, y, perms).theta
    config = SurrogateConfig(
        hidden=16, layers=2, epochs=2, patience=1, batch_permutations=3, device="cpu"
    )
    trained = {}
    for method in ("modelpred", "utllearn"):
        result = fit_surrogate(
            model,
            X,
            y,
            perms,
            theta,
            method=method,
            config=config,
            X_test=iris.test.X,
            y_test=iris.test.y,
        )
        trained[method] = result.surrogate
    return model, X, y, iris.test.X, iris.test.y, trained


@pytest.mark.parametrize("method", ["modelpred", "utllearn"])
def test_surrogate_values_sum_to_full_minus_empty(surrogates, method):
    model, X, y, X_test, y_test, trained = surrogates
    surrogate = trained[method]
    perms = shapley.valuation_permutations(0, len(y), 12)
    run = shapley.surrogate_shapley(surrogate, X, y, X_test, y_test, perms, [5, 12], block=5)
    empty = shapley.empty_utility(model, X_test, y_test)
    assert run.empty_utility == empty
    for index in range(2):
        assert run.values[index].sum() == pytest.approx(run.full_utility[index] - empty, abs=1e-10)
    # The full set's prediction from prefix sums equals the one from a mask,
    # up to float32 round-off of sums taken in another order.
    full = surrogate.predict_utility(X, y, np.ones((1, len(y))), X_test, y_test)[0]
    assert run.full_utility[-1] == pytest.approx(-full, abs=1e-5)


def test_utllearn_rejects_accuracy(surrogates):
    _, X, y, X_test, y_test, trained = surrogates
    with pytest.raises(ValueError, match="cannot give the 'accuracy' utility"):
        shapley.surrogate_prefix_utility(trained["utllearn"], X, y, X_test, y_test, "accuracy")


def test_modelpred_matches_prefix_thetas(surrogates):
    model, X, y, X_test, y_test, trained = surrogates
    perms = shapley.valuation_permutations(2, len(y), 4)
    run = shapley.surrogate_shapley(trained["modelpred"], X, y, X_test, y_test, perms, [4])
    thetas = trained["modelpred"].predict_prefixes(X, y, perms)
    direct = shapley.shapley_from_thetas(model, perms, thetas, X_test, y_test)
    np.testing.assert_allclose(run.values[0], direct, rtol=0, atol=1e-12)


def test_valuation_stream_differs_from_sampling():
    from modelpred.sampling import draw_permutation

    ours = shapley.valuation_permutations(0, 50, 3)
    sampled = np.stack([draw_permutation(0, t, np.arange(50)) for t in range(3)])
    assert not np.array_equal(ours, sampled)
    np.testing.assert_array_equal(shapley.valuation_permutations(0, 50, 2, start=1), ours[1:])


def test_reference_converges_with_loose_tolerance(small):
    model, X, y, X_test, y_test = small
    prefix_utility = shapley.solver_prefix_utility(model, X, y, X_test, y_test)
    empty = shapley.empty_utility(model, X_test, y_test)
    reference = shapley.reference_shapley(
        prefix_utility,
        N_SMALL,
        0,
        empty,
        max_permutations=400,
        min_permutations=100,
        chunk=50,
        tol=0.5,
    )
    assert reference.converged
    assert reference.n_permutations == 100
    assert reference.relative_standard_error[-1] <= 0.5


def test_reference_stops_at_cap(small):
    model, X, y, X_test, y_test = small
    prefix_utility = shapley.solver_prefix_utility(model, X, y, X_test, y_test)
    empty = shapley.empty_utility(model, X_test, y_test)
    reference = shapley.reference_shapley(
        prefix_utility,
        N_SMALL,
        0,
        empty,
        max_permutations=120,
        min_permutations=50,
        chunk=50,
        tol=1e-6,
    )
    assert not reference.converged
    assert reference.n_permutations == 120
    np.testing.assert_array_equal(reference.checked_at, [50, 100, 120])
    # The estimate uses permutations 0..119 of the reference stream.
    perms = shapley.valuation_permutations(0, N_SMALL, 120, stream=shapley.REFERENCE_STREAM)
    direct = shapley.shapley_from_prefix_utilities(perms, prefix_utility(perms), empty)
    np.testing.assert_allclose(reference.values, direct, rtol=0, atol=1e-10)


def _fake_results(dataset, n=6, T=(50, 100), with_reference=True):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=n)
    estimators = {}
    for method, noise, cost in (
        ("solver", 0.0, 0.0),
        ("modelpred", 0.1, 5.0),
        ("utllearn", 1.0, 4.0),
    ):
        values = np.stack([truth + noise * rng.normal(size=n) for _ in T])
        run = shapley.ShapleyRun(
            checkpoints=np.asarray(T),
            values=values,
            standard_error=np.full_like(values, 0.01),
            seconds=np.asarray([1.0, 2.0]),
            full_utility=np.asarray([-0.3, -0.3]),
            empty_utility=-0.69,
        )
        estimators[method] = shapley.EstimatorResult(
            run, sampling_seconds=cost, training_seconds=cost / 2
        )
    reference = None
    if with_reference:
        reference = shapley.ReferenceShapley(
            values=truth,
            standard_error=np.full(n, 0.01),
            n_permutations=400,
            converged=True,
            checked_at=np.asarray([300, 400]),
            relative_standard_error=np.asarray([0.06, 0.04]),
            relative_change=np.asarray([0.02, 0.01]),
            seconds=3.0,
            tol=0.05,
            chunk=100,
            min_permutations=300,
            max_permutations=4000,
        )
    return shapley.ShapleyResults(dataset, "lr", "neg_loss", estimators, reference, {"seed": 0})


def test_results_file_round_trip(tmp_path):
    results = _fake_results("iris")
    path = tmp_path / "iris.h5"
    shapley.write_results(path, results)
    back = shapley.read_results(path)
    assert (back.dataset, back.model, back.utility) == ("iris", "lr", "neg_loss")
    assert list(back.estimators) == ["solver", "modelpred", "utllearn"]
    np.testing.assert_array_equal(
        back.estimators["modelpred"].run.values, results.estimators["modelpred"].run.values
    )
    np.testing.assert_array_equal(back.estimators["modelpred"].total_seconds, [8.5, 9.5])
    assert back.reference.n_permutations == 400
    assert back.reference.converged is True
    np.testing.assert_array_equal(back.reference.values, results.reference.values)


def test_run_and_reference_files_round_trip(tmp_path, small):
    model, X, y, X_test, y_test = small
    perms = shapley.valuation_permutations(0, N_SMALL, 6)
    run = shapley.solver_shapley(model, X, y, X_test, y_test, perms, [3, 6])
    shapley.write_run(tmp_path / "solver.h5", run, {"digest": shapley.permutations_digest(perms)})
    back, attrs = shapley.read_run(tmp_path / "solver.h5")
    np.testing.assert_array_equal(back.values, run.values)
    assert attrs["digest"] == shapley.permutations_digest(perms)
    reference = _fake_results("iris").reference
    shapley.write_reference(tmp_path / "reference.h5", reference, {})
    again, _ = shapley.read_reference(tmp_path / "reference.h5")
    np.testing.assert_array_equal(again.relative_standard_error, reference.relative_standard_error)


def test_results_file_missing_member(tmp_path):
    from modelpred import io

    io.write_arrays(
        tmp_path / "bad.h5",
        {"T": np.arange(2), "estimators/solver/values": np.zeros((2, 3))},
        {"dataset": "iris", "base_model": "lr", "utility": "neg_loss", "estimators": "solver"},
    )
    with pytest.raises(io.FormatError, match="missing 'estimators/solver/sampling_seconds'"):
        shapley.read_results(tmp_path / "bad.h5")


def test_table5_has_paper_values_and_metrics(tmp_path):
    frame = shapley.table5_frame(
        [_fake_results("iris"), _fake_results("magic")], load_paper_values()
    )
    iris_modelpred = frame[
        (frame["dataset"] == "iris") & (frame["method"] == "modelpred") & (frame["T"] == 50)
    ].iloc[0]
    assert iris_modelpred["nrmse_paper"] == pytest.approx(0.0852)
    assert iris_modelpred["seconds_paper"] == pytest.approx(10.5)
    assert iris_modelpred["seconds"] == pytest.approx(5.0 + 2.5 + 1.0)
    assert 0.9 < iris_modelpred["spearman"] <= 1.0
    solver_rows = frame[frame["method"] == "solver"]
    assert solver_rows["nrmse"].isna().all()
    assert solver_rows["spearman_reference"].eq(1.0).all()
    assert frame[frame["dataset"] == "magic"]["nrmse_paper"].isna().all()

    paths = shapley.write_table5(frame, tmp_path / "table5_shapley", left_out=["spam"])
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
    csv = pd.read_csv(paths[0])
    assert list(csv.columns) == list(shapley.TABLE5_COLUMNS)
    assert len(csv) == 2 * 3 * 2
    assert csv["T"].tolist()[:2] == [50, 100]
    assert csv["reference_permutations"].eq(400).all()
    assert csv["reference_converged"].all()
    assert csv["nrmse"].astype(float).notna().sum() == 2 * 2 * 2
    markdown = paths[1].read_text()
    assert "(8.52%)" in markdown
    assert "MAGIC stands in for HIGGS" in markdown
    assert "SPAM is not enabled" in markdown
    assert "400 permutations" in markdown
    assert r"\begin{tabular}" in paths[2].read_text()


def test_figure4_writes_png_and_pdf(tmp_path):
    paths = shapley.figure4([_fake_results("mnist"), _fake_results("magic")], tmp_path / "fig4")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_benchmark_seconds_sum_shards(tmp_path):
    header = "s\th:m:s\tmax_rss\n"
    (tmp_path / "a.tsv").write_text(header + "2.5\t0:00:02\t10\n")
    (tmp_path / "b.tsv").write_text(header + "1.0\t0:00:01\t10\n3.0\t0:00:03\t10\n")
    assert shapley.read_benchmark_seconds(
        [tmp_path / "a.tsv", tmp_path / "b.tsv"]
    ) == pytest.approx(4.5)
    (tmp_path / "c.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(ValueError, match="no column 's'"):
        shapley.read_benchmark_seconds(tmp_path / "c.tsv")


def test_exact_shapley_rejects_large_n():
    with pytest.raises(ValueError, match="too large"):
        shapley.exact_shapley(17, lambda subset: 0.0)


def test_marginal_contributions_shape_mismatch():
    with pytest.raises(ValueError, match="must both have shape"):
        shapley.marginal_contributions(np.zeros((2, 3), dtype=int), np.zeros((2, 4)), 0.0)


def test_permutation_shapley_needs_enough_permutations(small):
    with pytest.raises(ValueError, match="need at least 10 permutations"):
        shapley.permutation_shapley(
            lambda p: np.zeros(p.shape), np.zeros((5, 3), dtype=int), [10], 0.0, 5
        )


def test_standard_error_is_nan_for_one_permutation(small):
    model, X, y, X_test, y_test = small
    perms = shapley.valuation_permutations(0, N_SMALL, 1)
    run = shapley.solver_shapley(model, X, y, X_test, y_test, perms, [1])
    assert np.isnan(run.standard_error).all()
    assert not math.isnan(run.values.sum())


def test_multiclass_solver_efficiency():
    rng = np.random.default_rng(1)
    centres = np.array([[0.6, 0.0], [-0.3, 0.5], [-0.3, -0.5]])
    y = np.repeat(np.arange(3), 3)
    X = centres[y] + 0.2 * rng.normal(size=(9, 2))
    X_test, y_test = X + 0.05, y
    model = make_model("lr", 2, 3)
    perms = shapley.valuation_permutations(0, 9, 20)
    for utility in ("neg_loss", "accuracy"):
        run = shapley.solver_shapley(model, X, y, X_test, y_test, perms, [20], utility)
        full = float(shapley.theta_utilities(model, model.fit(X, y), X_test, y_test, utility))
        empty = shapley.empty_utility(model, X_test, y_test, utility)
        assert run.values[0].sum() == pytest.approx(full - empty, abs=1e-8), utility
