"""Benchmark: permutation sampling of spam `lr` against one scikit-learn fit per prefix.

Runs the whole sampling job (n = 300 training points, T = 50 permutations,
15,000 fits) with modelpred's batched, warm-started Newton solver, and the
reference that the paper's code uses: an independent
``LogisticRegression(C=1/λ, tol=1e-10)`` fit per prefix. The reference runs
on the first REFERENCE_PERMUTATIONS permutations and is scaled linearly to T.
The last line printed is one JSON object.

    python benchmarks/sampling.py
"""

from __future__ import annotations

import json
import time

import numpy as np
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from modelpred import sampling
from modelpred.data import build_dataset
from modelpred.models import make_model

N_PERMUTATIONS = 50
REFERENCE_PERMUTATIONS = 2
LAM = 1.0


def reference_fits(X, y, permutation):
    """Fit every prefix independently, as the paper's code does; θ = 0 for one-class prefixes."""
    thetas = np.zeros((len(permutation), X.shape[1] + 1))
    for i in range(len(permutation)):
        rows = permutation[: i + 1]
        if len(np.unique(y[rows])) < 2:
            continue
        fit = SkLogisticRegression(C=1.0 / LAM, tol=1e-10, max_iter=10_000).fit(X[rows], y[rows])
        thetas[i] = np.r_[fit.coef_[0], fit.intercept_]
    return thetas


def main() -> None:
    spec = {
        "source": {"kind": "bundled"},
        "n_train": 300,
        "n_pool": 150,
        "n_test": 500,
        "models": ["lr"],
    }
    dataset = build_dataset("spam", spec, seed=0)
    model = make_model("lr", dataset.n_features, dataset.n_classes, lam=LAM)
    X, y = dataset.train.X, dataset.train.y

    start = time.perf_counter()
    # One block of all 50 permutations: the whole job in one batched solve.
    ours = sampling.sample_permutations(
        model, dataset, np.arange(N_PERMUTATIONS), seed=0, block=N_PERMUTATIONS
    )
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    reference = [
        reference_fits(X, y, ours["permutations"][t]) for t in range(REFERENCE_PERMUTATIONS)
    ]
    measured_s = time.perf_counter() - start
    reference_s = measured_s * N_PERMUTATIONS / REFERENCE_PERMUTATIONS

    errors = []
    for t, theta_ref in enumerate(reference):
        solved = ~ours["one_class"][t]
        diff = np.linalg.norm(ours["theta"][t][solved] - theta_ref[solved], axis=1)
        errors.append(diff / np.linalg.norm(theta_ref[solved], axis=1))
    max_rel_err = float(np.concatenate(errors).max())

    fits = N_PERMUTATIONS * len(y)
    print(f"ours: {fits} prefix fits in {ours_s:.2f} s")
    print(
        f"reference: {REFERENCE_PERMUTATIONS * len(y)} scikit-learn fits in {measured_s:.2f} s, "
        f"scaled linearly to {N_PERMUTATIONS} permutations: {reference_s:.1f} s"
    )
    print(f"largest relative θ difference over solved prefixes: {max_rel_err:.2e}")
    result = {
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ratio": reference_s / ours_s,
        "max_rel_err": max_rel_err,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
