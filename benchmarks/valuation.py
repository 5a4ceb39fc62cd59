"""Benchmark: ModelPred Shapley values of spam `lr` against solver Shapley values.

Setting: spam with n = 300 training points, 500 test points, utility = the
negative mean test loss, T = 1000 permutations of the valuation stream.

- ModelPred-SV, inference: Shapley values from the surrogate's predictions
  for every prefix of the 1000 permutations (one cumulative sum of
  embeddings per permutation), scored on the test set.
- ModelPred-SV, total: sampling (T_s = ⌈15000 / 300⌉ = 50 permutations,
  every prefix solved by the batched solver) + training a ModelPred surrogate
  with the default ``SurrogateConfig`` on the CPU + inference. All three run
  here, in this process.
- Solver, the usual way: one scikit-learn ``LogisticRegression(C=1/λ)`` fit
  per prefix, with scikit-learn's default lbfgs solver and tolerance, as
  permutation-sampling code built on scikit-learn estimators (pyDVL, the
  ModelPred authors' code) retrains. It runs on REFERENCE_PERMUTATIONS
  permutations and its time is scaled linearly to T = 1000.
- Fast solver: modelpred's batched, warm-started solver on all 1000
  permutations, which also gives the solver values that ModelPred-SV is
  compared with (Spearman's ρ).

Torch runs on one thread throughout. The last line printed is one JSON
object; the ratios divide ``solver_s`` by our times.

    python benchmarks/valuation.py
"""

from __future__ import annotations

import json
import logging
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from modelpred import metrics, sampling
from modelpred.applications import shapley
from modelpred.data import build_dataset
from modelpred.models import make_model
from modelpred.surrogate import SurrogateConfig, fit_surrogate

N_TRAIN = 300
T = 1000
SAMPLED_SUBSETS = 15000
REFERENCE_PERMUTATIONS = 3
LAM = 1.0
SEED = 0


def sklearn_prefix_utilities(X, y, X_test, y_test, permutation):
    """Return the negative mean test loss of one scikit-learn fit per prefix (one class: θ = 0)."""
    utilities = np.empty(len(permutation))
    zero_loss = np.log(2.0)
    for i in range(len(permutation)):
        rows = permutation[: i + 1]
        if len(np.unique(y[rows])) < 2:
            utilities[i] = -zero_loss
            continue
        fit = SkLogisticRegression(C=1.0 / LAM, max_iter=1000).fit(X[rows], y[rows])
        p1 = np.clip(fit.predict_proba(X_test)[:, 1], 1e-15, 1 - 1e-15)
        utilities[i] = np.mean(y_test * np.log(p1) + (1 - y_test) * np.log(1 - p1))
    return utilities


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    spec = {
        "source": {"kind": "bundled"},
        "n_train": N_TRAIN,
        "n_pool": 150,
        "n_test": 500,
        "models": ["lr"],
    }
    dataset = build_dataset("spam", spec, seed=SEED)
    model = make_model("lr", dataset.n_features, dataset.n_classes, lam=LAM)
    X, y, X_test, y_test = dataset.train.X, dataset.train.y, dataset.test.X, dataset.test.y
    permutations = shapley.valuation_permutations(SEED, N_TRAIN, T)

    started = time.perf_counter()
    n_sampled = sampling.n_permutations(N_TRAIN, SAMPLED_SUBSETS)
    samples = sampling.sample_permutations(model, dataset, np.arange(n_sampled), seed=SEED)
    sampling_s = time.perf_counter() - started

    started = time.perf_counter()
    trained = fit_surrogate(
        model,
        X,
        y,
        samples["permutations"],
        samples["theta"],
        method="modelpred",
        config=SurrogateConfig(seed=SEED, device="cpu"),
        one_class=samples["one_class"],
        X_test=X_test,
        y_test=y_test,
    )
    training_s = time.perf_counter() - started

    ours = shapley.surrogate_shapley(trained.surrogate, X, y, X_test, y_test, permutations, [T])
    inference_s = float(ours.seconds[-1])
    total_s = sampling_s + training_s + inference_s

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = [
            sklearn_prefix_utilities(X, y, X_test, y_test, p)
            for p in permutations[:REFERENCE_PERMUTATIONS]
        ]
    measured_s = time.perf_counter() - started
    solver_s = measured_s * T / REFERENCE_PERMUTATIONS

    fast = shapley.solver_shapley(model, X, y, X_test, y_test, permutations, [T])
    fast_s = float(fast.seconds[-1])

    # The two solvers should agree on the utilities of the permutations both ran.
    fits = model.fit_prefixes(X, y, permutations[:REFERENCE_PERMUTATIONS])
    ours_utilities = shapley.theta_utilities(model, fits.theta, X_test, y_test)
    utility_gap = float(np.max(np.abs(ours_utilities - np.stack(reference))))
    rho = metrics.spearman(ours.values[-1], fast.values[-1])

    print(f"spam, n = {N_TRAIN}, T = {T} permutations, torch on 1 thread")
    print(f"ModelPred-SV inference: {inference_s:.2f} s")
    print(
        f"ModelPred-SV total: {total_s:.1f} s = sampling {sampling_s:.1f} s "
        f"({n_sampled} permutations) + training {training_s:.1f} s "
        f"(best epoch {trained.best_epoch} of {len(trained.history)}, "
        f"default SurrogateConfig) + inference {inference_s:.2f} s"
    )
    print(
        f"solver, one scikit-learn fit per prefix: {measured_s:.1f} s on "
        f"{REFERENCE_PERMUTATIONS} permutations, "
        f"scaled linearly to T = {T}: {solver_s:.0f} s"
    )
    print(f"fast solver (batched, warm-started) on all {T} permutations: {fast_s:.1f} s")
    print(f"largest prefix-utility difference between the two solvers: {utility_gap:.2e}")
    print(f"Spearman rho between ModelPred-SV and the solver's values: {rho:.4f}")
    result = {
        "ours_inference_s": inference_s,
        "ours_total_s": total_s,
        "solver_s": solver_s,
        "fast_solver_s": fast_s,
        "ratio_inference": solver_s / inference_s,
        "ratio_total": solver_s / total_s,
        "spearman": rho,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
