"""Estimator-style facade: ModelPred on your own NumPy data.

:class:`ModelPred` runs the whole method of Zeng, Just, Wang, Jin and Chen,
"ModelPred: A Framework for Predicting Trained Model from Training Data":

1. permutation sampling (Algorithm 1): for T random orderings of the n
   training points, the base model A is trained on every prefix, each solve
   warm-started from the previous prefix;
2. a DeepSets surrogate Â(S) ≈ A(S) is trained on the (prefix, θ) pairs, with
   the parameter, KKT and utility losses (``method="modelpred"``);
3. Â answers questions about subsets of the training data without
   retraining: predicted parameters, Shapley values, the effect of deleting
   or adding a group of points, memorization, influence and calibration by
   bagging.

The object follows scikit-learn's conventions: the keyword-only constructor
only stores its arguments, :meth:`ModelPred.fit` validates them and returns
the estimator, and everything learned ends in an underscore.

Conventions
-----------
* Labels may be any sortable values. ``classes_`` holds them in sorted order
  and the base model sees class indices 0..K-1.
* θ is the row-major flattening of an R×(d+1) matrix whose last column is
  the intercept, with R = 1 for two classes (scoring ``classes_[1]`` against
  ``classes_[0]``) and R = K otherwise; :func:`unpack_theta` splits it.
* The base models minimise the *summed* loss plus (λ/2)‖w‖², i.e.
  scikit-learn's ``C = 1/λ``. A subset that lacks a class gets θ = 0, and
  the surrogate returns exactly 0 for such subsets too.
* The test utility is the mean test loss of a model (lower is better).
  Shapley values use its negative (``utility="neg_loss"``) or the test
  accuracy.
* Features are used as given. The paper rescales every point so that the
  largest training-row norm is 1, and the surrogate trains best on features
  of that scale; see the quick-start in ``docs/library.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError
from tqdm import tqdm

__all__ = ["GroupEffect", "ModelPred", "unpack_theta"]

logger = logging.getLogger(__name__)

BASE_MODELS = ("lr", "svm")
"""Base models the facade trains on NumPy features."""

ESTIMATORS = ("surrogate", "solver")
"""Sources of a query's models: the surrogate's predictions, or retraining by the solver."""

MEMORIZATION_KINDS = ("leave_one_out", "subsampling")
"""Memorization estimators: conf(A(D)) − conf(A(D∖i)), or Feldman and Zhang's subsampling."""

_MAX_SEED = 2**31 - 1


@dataclass
class GroupEffect:
    """Effect of deleting or adding a group of training points on the model.

    "Before" is the model A(D) trained on the whole training set, which the
    solver computed during :meth:`ModelPred.fit`. "After" is Â(D') on the
    changed set D', predicted by the surrogate. The ``*_true`` fields hold
    A(D') retrained by the solver, and are None unless ``check=True``.

    Attributes
    ----------
    theta_before : ndarray, shape (p,)
        θ of A(D).
    theta_after : ndarray, shape (p,)
        Predicted θ of Â(D').
    loss_before, loss_after : float
        Mean test loss of A(D) and of Â(D').
    accuracy_before, accuracy_after : float
        Test accuracy of A(D) and of Â(D').
    seconds : float
        Wall time of the prediction.
    theta_after_true : ndarray, shape (p,), or None
        θ of A(D') retrained by the solver.
    loss_after_true, accuracy_after_true : float or None
        Its mean test loss and test accuracy.
    seconds_retrained : float or None
        Wall time of the retraining.
    """

    theta_before: np.ndarray
    theta_after: np.ndarray
    loss_before: float
    loss_after: float
    accuracy_before: float
    accuracy_after: float
    seconds: float
    theta_after_true: np.ndarray | None = None
    loss_after_true: float | None = None
    accuracy_after_true: float | None = None
    seconds_retrained: float | None = None

    @property
    def theta_change(self) -> np.ndarray:
        """Predicted change θ(D') − θ(D), shape (p,)."""
        return self.theta_after - self.theta_before

    @property
    def theta_change_true(self) -> np.ndarray | None:
        """Retrained change θ(D') − θ(D), shape (p,), or None without ``check``."""
        if self.theta_after_true is None:
            return None
        return self.theta_after_true - self.theta_before

    @property
    def parameter_error(self) -> float | None:
        """‖θ̂(D') − θ*(D')‖ between the prediction and the retrained model, or None."""
        if self.theta_after_true is None:
            return None
        return float(np.linalg.norm(self.theta_after - self.theta_after_true))


def unpack_theta(theta: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Split flat parameters into coefficients and intercepts.

    Parameters
    ----------
    theta : array, shape (..., p)
        Flat θ with p = R (d + 1).
    n_features : int
        Feature dimension d.

    Returns
    -------
    coef : ndarray, shape (..., R, d)
    intercept : ndarray, shape (..., R)

    Raises
    ------
    ValueError
        If p is not a multiple of d + 1.
    """
    theta = np.asarray(theta, dtype=np.float64)
    width = int(n_features) + 1
    if theta.ndim < 1 or theta.shape[-1] % width:
        raise ValueError(
            f"theta of shape {theta.shape} does not hold rows of d + 1 = {width} values; "
            "pass θ of this estimator's base model and its n_features_in_"
        )
    matrix = theta.reshape(*theta.shape[:-1], theta.shape[-1] // width, width)
    return matrix[..., :-1], matrix[..., -1]


def _seed_from(random_state: Any, name: str = "random_state") -> int:
    """Return a non-negative int seed from None, an int or a numpy Generator."""
    if random_state is None:
        return int(np.random.default_rng().integers(_MAX_SEED))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(_MAX_SEED))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {random_state}")
        return int(random_state)
    raise ValueError(
        f"{name} must be None, a non-negative int or a numpy.random.Generator, "
        f"got {type(random_state).__name__} {random_state!r}"
    )


def _check_features(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a finite float64 (n, d) array, or raise ValueError naming it."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name} must hold numbers only ({error}); encode or drop the other columns"
        ) from error
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}"
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features but the estimator was fitted on {n_features}; "
            "pass points with the same columns as in fit"
        )
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"{name} has NaN or infinite values in {len(rows)} rows "
            f"(first rows: {rows[:5].tolist()}); fill or drop them before fitting"
        )
    return X


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ModelPred:
    """Predict the model that a learning algorithm trains on any subset of your data.

    Parameters
    ----------
    base_model : {'lr', 'svm'}, default='lr'
        The learning algorithm A: L2 logistic regression (binary or
        multinomial) or the squared-hinge linear SVM (two classes only).
    lam : float, default=1.0
        L2 penalty λ of the summed-loss objective (scikit-learn's C = 1/λ).
    n_permutations : int or None, default=None
        Permutations T sampled in :meth:`fit`. None takes
        T = ⌈n_subsets / n⌉.
    n_subsets : int, default=15000
        Training subsets (prefixes) to sample when ``n_permutations`` is None.
    method : {'modelpred', 'paralearn', 'utllearn'}, default='modelpred'
        Surrogate loss: ModelPred (parameter, KKT and utility terms),
        ParaLearn (parameter term only) or UtlLearn (predicts the mean test
        loss directly; needs ``X_test`` in :meth:`fit` and supports only
        :meth:`predict_utility` and :meth:`shapley_values`).
    hidden : int, default=128
        Units of every hidden layer of the DeepSets networks φ and ρ.
    layers : int, default=3
        Fully connected layers of φ and of ρ each.
    epochs : int, default=300
        Maximum training epochs of the surrogate (early stopping on a
        validation split of the permutations ends most runs sooner).
    surrogate_options : mapping, optional
        Other :class:`~modelpred.surrogate.SurrogateConfig` fields, for
        example ``{"lr": 3e-4, "patience": 10, "w_kkt": 0.5}``.
    device : str, default='auto'
        Torch device of the surrogate; ``'auto'`` uses CUDA when available.
    verbose : bool, default=False
        Show progress bars of the sampling and of the training epochs on
        stderr. The trainer also logs every epoch's losses at INFO level
        (logger ``modelpred.surrogate.trainer``).
    random_state : int, numpy.random.Generator or None, default=None
        Seeds the permutations, the surrogate's initialisation and every
        random draw of the query methods. An int gives the same results on
        every run on the CPU; a Generator or None draws one int seed
        (stored in ``seed_``).

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
        Sorted label values seen in :meth:`fit`.
    n_features_in_ : int
        Feature dimension d.
    n_params_ : int
        Length p of θ.
    seed_ : int
        The seed that ``random_state`` resolved to.
    model_ : modelpred.models.BaseModel
        The base model A (its solver and its torch loss functions).
    samples_ : dict of ndarray
        The permutation samples: ``permutations`` (T, n), ``theta``
        (T, n, p), ``converged`` and ``one_class`` (T, n).
    theta_full_ : ndarray, shape (p,)
        A(D), the model trained on all training points by the solver.
    surrogate_ : modelpred.surrogate.Surrogate
        The trained surrogate Â; ``surrogate_.save(path)`` writes it to disk.
    training_ : modelpred.surrogate.TrainingResult
        Training curve, best epoch and the validation split.
    sampling_seconds_, training_seconds_ : float
        Wall time of the sampling and of the surrogate training.

    See Also
    --------
    modelpred.sampling.sample_permutations : the sampling step alone.
    modelpred.surrogate.fit_surrogate : the training step alone.

    Examples
    --------
    >>> import numpy as np
    >>> from modelpred import ModelPred
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3)) / 3
    >>> y = (X[:, 0] > 0).astype(int)
    >>> mp = ModelPred(n_subsets=400, hidden=16, epochs=2, random_state=0).fit(X, y, X, y)
    >>> mp.predict(np.ones((2, 40), dtype=bool)).shape
    (2, 4)
    """

    def __init__(
        self,
        *,
        base_model: str = "lr",
        lam: float = 1.0,
        n_permutations: int | None = None,
        n_subsets: int = 15000,
        method: str = "modelpred",
        hidden: int = 128,
        layers: int = 3,
        epochs: int = 300,
        surrogate_options: Mapping[str, Any] | None = None,
        device: str = "auto",
        verbose: bool = False,
        random_state: int | np.random.Generator | None = None,
    ):
        self.base_model = base_model
        self.lam = lam
        self.n_permutations = n_permutations
        self.n_subsets = n_subsets
        self.method = method
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.surrogate_options = surrogate_options
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the constructor arguments by name, as scikit-learn's ``get_params`` does."""
        return {name: getattr(self, name) for name in ModelPred.__init__.__kwdefaults__}

    def set_params(self, **params: Any) -> ModelPred:
        """Set constructor arguments by name and return self; fit again to use them."""
        unknown = sorted(set(params) - set(ModelPred.__init__.__kwdefaults__))
        if unknown:
            raise ValueError(
                f"invalid parameters {unknown} for ModelPred; "
                f"valid ones are {sorted(ModelPred.__init__.__kwdefaults__)}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = ModelPred.__init__.__kwdefaults__
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if value is not defaults[name] and value != defaults[name]
        ]
        return f"ModelPred({', '.join(changed)})"

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, X_test: Any = None, y_test: Any = None) -> ModelPred:
        """Sample trained models on random subsets of (X, y) and train the surrogate on them.

        Parameters
        ----------
        X : array-like, shape (n, d)
            Training features, finite numbers.
        y : array-like, shape (n,)
            Training labels; at least two distinct values.
        X_test : array-like, shape (n_test, d), optional
            Held-out features. Needed for ``method='utllearn'``, and the
            default test set of the query methods.
        y_test : array-like, shape (n_test,), optional
            Held-out labels, each one of the training labels.

        Returns
        -------
        self : ModelPred

        Raises
        ------
        ValueError
            For an invalid constructor argument, NaN or infinite features,
            fewer than two points or classes, more than two classes with
            ``base_model='svm'``, or test labels not seen in ``y``.
        """
        from . import io
        from .models import make_model
        from .sampling import n_permutations as default_permutations
        from .sampling import sample_permutations
        from .surrogate import SurrogateConfig, fit_surrogate
        from .surrogate.config import check_method

        self._reset()
        config_fields = self._check_params()
        check_method(self.method)
        X = _check_features(X, "X")
        self.classes_, y_index = self._encode_training_labels(y, len(X))
        self.n_features_in_ = X.shape[1]
        test = self._check_test_pair(X_test, y_test, required=self.method == "utllearn")
        self.seed_ = _seed_from(self.random_state)
        n = len(y_index)
        n_perms = (
            default_permutations(n, _check_positive_int(self.n_subsets, "n_subsets"))
            if self.n_permutations is None
            else _check_positive_int(self.n_permutations, "n_permutations")
        )

        # The surrogate's settings are checked now, before the sampling spends time.
        config = SurrogateConfig.from_dict(
            {
                **config_fields,
                "hidden": self.hidden,
                "layers": self.layers,
                "epochs": self.epochs,
                "seed": self.seed_,
                "device": self.device,
            }
        )
        model = make_model(self.base_model, X.shape[1], len(self.classes_), float(self.lam))
        self.model_ = model
        self.n_params_ = model.n_params
        self.X_train_, self.y_train_ = X, y_index
        self.X_test_, self.y_test_ = test if test is not None else (None, None)

        # Step 1: Algorithm 1, every prefix of T permutations solved with warm starts.
        empty = io.Split(np.zeros((0, X.shape[1])), np.zeros(0, dtype=np.int64))
        dataset = io.Dataset(
            train=io.Split(X, y_index),
            test=empty,
            pool=empty,
            attrs={"n_classes": len(self.classes_)},
        )
        logger.info(
            "sampling %d permutations of %d points (%d prefix fits of base model '%s')",
            n_perms,
            n,
            n_perms * n,
            self.base_model,
        )
        started = time.perf_counter()
        # The sampler always draws a tqdm bar; without verbose it goes to the null device.
        progress = contextlib.nullcontext(sys.stderr) if self.verbose else open(os.devnull, "w")  # noqa: SIM115
        with progress as stream:
            samples = sample_permutations(
                model, dataset, np.arange(n_perms), self.seed_, progress_file=stream
            )
        self.sampling_seconds_ = time.perf_counter() - started
        self.samples_ = {
            name: samples[name] for name in ("permutations", "theta", "converged", "one_class")
        }
        # Every permutation ends with the full set, so A(D) comes for free.
        self.theta_full_ = samples["theta"][0, -1].copy()

        # Step 2: the DeepSets surrogate on the (prefix, θ) pairs.
        started = time.perf_counter()
        with tqdm(
            total=config.epochs,
            desc="surrogate epochs",
            unit="epoch",
            disable=not self.verbose,
            file=sys.stderr,
        ) as bar:
            self.training_ = fit_surrogate(
                model,
                X,
                y_index,
                samples["permutations"],
                samples["theta"],
                method=self.method,
                config=config,
                one_class=samples["one_class"],
                converged=samples["converged"],
                X_test=self.X_test_,
                y_test=self.y_test_,
                on_epoch_end=lambda epoch, record: self._show_epoch(record, bar),
            )
        self.training_seconds_ = time.perf_counter() - started
        self.surrogate_ = self.training_.surrogate
        logger.info(
            "trained the '%s' surrogate in %.1f s (best epoch %d, loss %.4g); sampling took %.1f s",
            self.method,
            self.training_seconds_,
            self.training_.best_epoch,
            self.training_.best_loss,
            self.sampling_seconds_,
        )
        return self

    def _reset(self) -> None:
        """Delete the fitted state, so that a failed refit leaves an unfitted estimator."""
        for name in [key for key in vars(self) if key.endswith("_") and not key.startswith("_")]:
            delattr(self, name)

    def _check_params(self) -> dict[str, Any]:
        """Validate the constructor arguments that fit does not hand on unchecked."""
        if self.base_model not in BASE_MODELS:
            raise ValueError(
                f"base_model must be one of {list(BASE_MODELS)}, got {self.base_model!r}"
            )
        if (
            isinstance(self.lam, bool)
            or not isinstance(self.lam, (int, float, np.number))
            or not self.lam > 0
        ):
            raise ValueError(f"lam must be a positive number, got {self.lam!r}")
        options = dict(self.surrogate_options or {})
        clashes = sorted(set(options) & {"hidden", "layers", "epochs", "seed", "device"})
        if clashes:
            raise ValueError(
                f"surrogate_options sets {clashes}, which are constructor arguments of ModelPred "
                "(seed is random_state); pass them to ModelPred directly"
            )
        return options

    @staticmethod
    def _show_epoch(record: Mapping[str, Any], bar) -> None:
        bar.update(1)
        if record.get("val_loss") is not None:
            bar.set_postfix(val_loss=f"{record['val_loss']:.4g}", refresh=False)

    # ------------------------------------------------------------ labels
    def _encode_training_labels(self, y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
        if n < 2:
            raise ValueError(f"need at least 2 training points, got {n}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y has NaN or infinite labels; drop those rows or fill their labels")
        classes, index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has a single class ({classes[0]!r}); a classifier needs at least two"
            )
        if self.base_model == "svm" and len(classes) > 2:
            raise ValueError(
                f"base_model='svm' is binary only but y has {len(classes)} classes; "
                "use base_model='lr' or keep two classes"
            )
        return classes, index.reshape(-1).astype(np.int64)

    def _encode_labels(self, y: Any, n: int, name: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"{name} must have shape ({n},) to match its features, got {y.shape}")
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(
                f"{name} has labels not seen in fit ({np.unique(y[unknown])[:5].tolist()}); "
                f"the training classes are {self.classes_.tolist()}"
            )
        return index.astype(np.int64)

    def _check_test_pair(
        self, X_test: Any, y_test: Any, required: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if X_test is None and y_test is None:
            if required:
                raise ValueError(
                    "method 'utllearn' learns the test loss, so fit needs X_test and y_test"
                )
            return None
        if X_test is None or y_test is None:
            raise ValueError("pass X_test and y_test together, or neither")
        X_test = _check_features(X_test, "X_test", self.n_features_in_)
        return X_test, self._encode_labels(y_test, len(X_test), "y_test")

    # ------------------------------------------------------------ checks
    def _check_fitted(self) -> None:
        if not hasattr(self, "surrogate_"):
            raise NotFittedError(
                "this ModelPred instance is not fitted yet; call fit(X, y) before querying it"
            )

    def _check_theta_surrogate(self, what: str) -> None:
        self._check_fitted()
        if self.surrogate_.predicts_utility:
            raise ValueError(
                f"{what} needs predicted parameters, but method='utllearn' predicts only the test "
                "loss; use predict_utility, or fit with method='modelpred'"
            )

    def _test_set(self, X_test: Any, y_test: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return the given test set (encoded), else the one passed to fit."""
        pair = self._check_test_pair(X_test, y_test, required=False)
        if pair is not None:
            return pair
        if self.X_test_ is None:
            raise ValueError("no test set: pass X_test and y_test to this method, or to fit")
        return self.X_test_, self.y_test_

    def _check_masks(self, masks: Any) -> np.ndarray:
        masks = np.asarray(masks)
        n = len(self.y_train_)
        if masks.ndim == 1:
            masks = masks[None, :]
        if masks.ndim != 2 or masks.shape[1] != n:
            raise ValueError(
                f"masks must have shape (m, {n}), one column per training point, got {masks.shape}"
            )
        if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
            raise ValueError("masks must be boolean or hold only 0 and 1")
        return masks.astype(bool)

    def _check_rows(self, rows: Any) -> np.ndarray:
        rows = np.asarray(rows)
        n = len(self.y_train_)
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise ValueError(f"a boolean rows mask must have shape ({n},), got {rows.shape}")
            return np.flatnonzero(rows)
        rows = rows.reshape(-1)
        if rows.size and not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(
                f"rows must be integer indices of training points, got dtype {rows.dtype}"
            )
        rows = rows.astype(np.int64)
        out_of_range = rows[(rows < 0) | (rows >= n)]
        if len(out_of_range):
            raise ValueError(
                f"rows {out_of_range[:5].tolist()} are not training points; "
                f"indices run from 0 to {n - 1}"
            )
        if len(np.unique(rows)) != len(rows):
            raise ValueError("rows lists a training point more than once; pass each index once")
        return rows

    # ------------------------------------------------------------ predictions
    def predict(self, masks: Any) -> np.ndarray:
        """Predict θ of the model trained on subsets of the training points.

        Parameters
        ----------
        masks : array-like of bool, shape (m, n) or (n,)
            Row b selects subset S_b of the n training points of :meth:`fit`.

        Returns
        -------
        ndarray, shape (m, p)
            Â(S_b); exactly 0 for a subset that lacks a class.
        """
        self._check_theta_surrogate("predict")
        masks = self._check_masks(masks)
        return self.surrogate_.predict(self.X_train_, self.y_train_, masks)

    def predict_sets(self, sets: Sequence[tuple[Any, Any]]) -> np.ndarray:
        """Predict θ for arbitrary sets of points, which need not be training points.

        Parameters
        ----------
        sets : sequence of (X_b, y_b)
            Set b has features of shape (n_b, d) and labels of shape (n_b,)
            from ``classes_``.

        Returns
        -------
        ndarray, shape (B, p)
        """
        self._check_theta_surrogate("predict_sets")
        encoded = []
        for index, (X_set, y_set) in enumerate(sets):
            X_set = _check_features(X_set, f"sets[{index}] features", self.n_features_in_)
            encoded.append((X_set, self._encode_labels(y_set, len(X_set), f"sets[{index}] labels")))
        return self.surrogate_.predict_sets(encoded)

    def predict_utility(self, masks: Any, X_test: Any = None, y_test: Any = None) -> np.ndarray:
        """Predict the mean test loss of the model trained on each subset.

        Parameters
        ----------
        masks : array-like of bool, shape (m, n) or (n,)
        X_test, y_test : array-like, optional
            The test set; defaults to the one given to :meth:`fit`. A
            ``utllearn`` surrogate accepts only that one.

        Returns
        -------
        ndarray, shape (m,)
        """
        self._check_fitted()
        masks = self._check_masks(masks)
        X_test, y_test = self._test_set(X_test, y_test)
        return self.surrogate_.predict_utility(self.X_train_, self.y_train_, masks, X_test, y_test)

    # ------------------------------------------------------------ Shapley values
    def shapley_values(
        self,
        X_test: Any = None,
        y_test: Any = None,
        *,
        n_permutations: int = 1000,
        utility: str = "neg_loss",
        estimator: str = "surrogate",
        return_std: bool = False,
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Estimate the Shapley value of every training point by permutation sampling.

        The value of point i is the mean over permutations π of
        U(P ∪ {i}) − U(P), where P contains the points before i in π. The
        surrogate (ModelPred-SV) predicts θ of all n prefixes of a
        permutation from one cumulative sum; ``estimator='solver'``
        retrains every prefix instead (the ground truth at the same
        permutations). The values sum to U(D) − U(∅), where U(∅) is the
        utility of θ = 0.

        Parameters
        ----------
        X_test, y_test : array-like, optional
            Points that score the utility; default the test set of :meth:`fit`.
        n_permutations : int, default=1000
            Permutations T. The solver costs T·n fits, the surrogate T·n
            forward passes of ρ.
        utility : {'neg_loss', 'accuracy'}, default='neg_loss'
            Negative mean test loss, or test accuracy.
        estimator : {'surrogate', 'solver'}, default='surrogate'
        return_std : bool, default=False
            Also return the standard error of each value (NaN for T = 1).
        random_state : int, Generator or None
            Seeds the permutations; default ``seed_``. Different from the
            permutations the surrogate was trained on.

        Returns
        -------
        values : ndarray, shape (n,)
        std_error : ndarray, shape (n,)
            Only with ``return_std``.
        """
        from .applications.shapley import solver_shapley, surrogate_shapley, valuation_permutations

        self._check_fitted()
        T = _check_positive_int(n_permutations, "n_permutations")
        self._check_estimator(estimator)
        X_test, y_test = self._test_set(X_test, y_test)
        seed = self.seed_ if random_state is None else _seed_from(random_state)
        permutations = valuation_permutations(seed, len(self.y_train_), T)
        if estimator == "solver":
            run = solver_shapley(
                self.model_,
                self.X_train_,
                self.y_train_,
                X_test,
                y_test,
                permutations,
                [T],
                utility,
            )
        else:
            run = surrogate_shapley(
                self.surrogate_,
                self.X_train_,
                self.y_train_,
                X_test,
                y_test,
                permutations,
                [T],
                utility,
            )
        logger.info(
            "Shapley values from %d permutations (%s) in %.2f s", T, estimator, run.seconds[-1]
        )
        if return_std:
            return run.values[-1], run.standard_error[-1]
        return run.values[-1]

    @staticmethod
    def _check_estimator(estimator: str) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")

    # ------------------------------------------------------------ group effects
    def group_deletion(
        self, rows: Any, X_test: Any = None, y_test: Any = None, *, check: bool = False
    ) -> GroupEffect:
        """Predict the model after deleting a group of training points.

        Parameters
        ----------
        rows : array-like of int, shape (g,), or of bool, shape (n,)
            Training points to delete (indices into the X of :meth:`fit`).
        X_test, y_test : array-like, optional
            Points that score the models; default the test set of :meth:`fit`.
        check : bool, default=False
            Also retrain A on the remaining points with the solver.

        Returns
        -------
        GroupEffect
        """
        self._check_theta_surrogate("group_deletion")
        rows = self._check_rows(rows)
        X_test, y_test = self._test_set(X_test, y_test)
        keep = np.ones(len(self.y_train_), dtype=bool)
        keep[rows] = False
        if not keep.any():
            raise ValueError("rows deletes every training point; keep at least one")

        started = time.perf_counter()
        theta_after = self.surrogate_.predict(self.X_train_, self.y_train_, keep[None, :])[0]
        seconds = time.perf_counter() - started
        X_kept, y_kept = self.X_train_[keep], self.y_train_[keep]
        return self._group_effect(theta_after, seconds, X_kept, y_kept, X_test, y_test, check)

    def group_addition(
        self, X_new: Any, y_new: Any, X_test: Any = None, y_test: Any = None, *, check: bool = False
    ) -> GroupEffect:
        """Predict the model after adding new points to the training set.

        The new points need not have been seen in :meth:`fit`; the
        surrogate embeds them like any other point.

        Parameters
        ----------
        X_new : array-like, shape (g, d)
        y_new : array-like, shape (g,)
            Labels from ``classes_``.
        X_test, y_test : array-like, optional
            Points that score the models; default the test set of :meth:`fit`.
        check : bool, default=False
            Also retrain A on the enlarged set with the solver.

        Returns
        -------
        GroupEffect
        """
        self._check_theta_surrogate("group_addition")
        X_new = _check_features(X_new, "X_new", self.n_features_in_)
        y_new = self._encode_labels(y_new, len(X_new), "y_new")
        X_test, y_test = self._test_set(X_test, y_test)
        X_all = np.concatenate([self.X_train_, X_new])
        y_all = np.concatenate([self.y_train_, y_new])

        started = time.perf_counter()
        theta_after = self.surrogate_.predict_sets([(X_all, y_all)])[0]
        seconds = time.perf_counter() - started
        return self._group_effect(theta_after, seconds, X_all, y_all, X_test, y_test, check)

    def _group_effect(
        self, theta_after, seconds, X_after, y_after, X_test, y_test, check
    ) -> GroupEffect:
        loss = self.model_.numpy_eval(
            "utility", np.stack([self.theta_full_, theta_after]), X_test, y_test
        )
        accuracy = self.model_.numpy_eval(
            "accuracy", np.stack([self.theta_full_, theta_after]), X_test, y_test
        )
        effect = GroupEffect(
            theta_before=self.theta_full_.copy(),
            theta_after=theta_after,
            loss_before=float(loss[0]),
            loss_after=float(loss[1]),
            accuracy_before=float(accuracy[0]),
            accuracy_after=float(accuracy[1]),
            seconds=seconds,
        )
        if check:
            from .applications.memorization import single_thread

            started = time.perf_counter()
            with single_thread():
                theta_true = self.model_.fit(X_after, y_after)
            effect.seconds_retrained = time.perf_counter() - started
            effect.theta_after_true = theta_true
            effect.loss_after_true = float(
                self.model_.numpy_eval("utility", theta_true, X_test, y_test)
            )
            effect.accuracy_after_true = float(
                self.model_.numpy_eval("accuracy", theta_true, X_test, y_test)
            )
        return effect

    # ------------------------------------------------------------ memorization and influence
    def _theta_predictor(self, estimator: str):
        from .applications.memorization import solver_predictor, surrogate_predictor

        self._check_estimator(estimator)
        if estimator == "solver":
            return solver_predictor(self.model_, self.X_train_, self.y_train_)
        return surrogate_predictor(self.surrogate_, self.X_train_, self.y_train_)

    def memorization(
        self,
        *,
        kind: str = "leave_one_out",
        estimator: str = "surrogate",
        n_subsets: int = 1000,
        fraction: float = 0.7,
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Estimate how much the model memorizes each training point.

        ``kind='leave_one_out'`` computes
        mem(i) = conf(A(D), xᵢ, yᵢ) − conf(A(D ∖ i), xᵢ, yᵢ), where conf is
        the probability the model gives to the true label (the form for a
        deterministic A). ``kind='subsampling'`` follows Feldman and Zhang:
        over ``n_subsets`` random subsets S_j of size round(fraction · n),
        mem(i) = P[f(xᵢ) = yᵢ | i ∈ S_j] − P[f(xᵢ) = yᵢ | i ∉ S_j].

        Parameters
        ----------
        kind : {'leave_one_out', 'subsampling'}, default='leave_one_out'
        estimator : {'surrogate', 'solver'}, default='surrogate'
            Predict every model with Â, or retrain it with the solver.
        n_subsets : int, default=1000
            Subsets for ``kind='subsampling'``.
        fraction : float, default=0.7
            Subset size as a fraction of n, for ``kind='subsampling'``.
        random_state : int, Generator or None
            Seeds the subsets; default ``seed_``.

        Returns
        -------
        ndarray, shape (n,)
            One value per training point, in [−1, 1].
        """
        from .applications.memorization import (
            leave_one_out,
            leave_one_out_memorization,
            subsampling_memorization,
        )

        self._check_theta_surrogate("memorization")
        if kind not in MEMORIZATION_KINDS:
            raise ValueError(f"kind must be one of {list(MEMORIZATION_KINDS)}, got {kind!r}")
        predictor = self._theta_predictor(estimator)
        n = len(self.y_train_)
        if kind == "leave_one_out":
            loo = leave_one_out(predictor, n)
            return leave_one_out_memorization(self.model_, loo, self.X_train_, self.y_train_)
        seed = self.seed_ if random_state is None else _seed_from(random_state)
        estimate = subsampling_memorization(
            predictor,
            self.model_,
            self.X_train_,
            self.y_train_,
            n_subsets=_check_positive_int(n_subsets, "n_subsets"),
            fraction=fraction,
            seed=seed,
        )
        return estimate.memorization

    def influence(
        self,
        X_eval: Any,
        y_eval: Any,
        *,
        estimator: str = "surrogate",
        n_subsets: int = 1000,
        fraction: float = 0.7,
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Estimate the influence of every training point on every evaluation point.

        infl(i, z) = P[f(x) = y | i ∈ S_j] − P[f(x) = y | i ∉ S_j] for
        z = (x, y), over ``n_subsets`` random subsets S_j of size
        round(fraction · n).

        Parameters
        ----------
        X_eval : array-like, shape (N, d)
        y_eval : array-like, shape (N,)
            Labels from ``classes_``.
        estimator : {'surrogate', 'solver'}, default='surrogate'
        n_subsets : int, default=1000
        fraction : float, default=0.7
        random_state : int, Generator or None
            Seeds the subsets; default ``seed_``.

        Returns
        -------
        ndarray, shape (n, N)
        """
        from .applications.memorization import subsampling_memorization

        self._check_theta_surrogate("influence")
        X_eval = _check_features(X_eval, "X_eval", self.n_features_in_)
        y_eval = self._encode_labels(y_eval, len(X_eval), "y_eval")
        seed = self.seed_ if random_state is None else _seed_from(random_state)
        estimate = subsampling_memorization(
            self._theta_predictor(estimator),
            self.model_,
            self.X_train_,
            self.y_train_,
            n_subsets=_check_positive_int(n_subsets, "n_subsets"),
            fraction=fraction,
            seed=seed,
            X_eval=X_eval,
            y_eval=y_eval,
        )
        return estimate.influence

    # ------------------------------------------------------------ calibration
    def calibration_ensemble(
        self,
        X_test: Any = None,
        y_test: Any = None,
        *,
        X_held: Any = None,
        y_held: Any = None,
        n_predicted: int = 5000,
        ratio: float = 0.6,
        repeats: int = 1,
        n_bins: int = 10,
        random_state: int | np.random.Generator | None = None,
    ):
        """Compare the calibration of bagging ensembles with and without predicted members.

        The Regular ensemble averages the class probabilities of every model
        the solver trained during sampling (prefixes that lack a class left
        out). The ModelPred ensemble adds ``n_predicted`` models Â(S) for
        bootstrap subsets S of round(ratio · n) draws with replacement.
        A temperature fitted on the held-out points rescales the ModelPred
        ensemble once more.

        Parameters
        ----------
        X_test, y_test : array-like, optional
            Points the expected calibration error (ECE) is computed on;
            default the test set of :meth:`fit`.
        X_held, y_held : array-like, optional
            Points the temperature is fitted on. Default: the training
            points, which every ensemble has seen, so the temperature may
            come out too low; pass points outside both sets when you have them.
        n_predicted : int, default=5000
            Predicted members per repeat.
        ratio : float, default=0.6
            Bootstrap draws per subset as a fraction of n.
        repeats : int, default=1
            Independent draws of the predicted members.
        n_bins : int, default=10
            Equal-width confidence bins of the ECE.
        random_state : int, Generator or None
            Seeds the bootstrap subsets; default ``seed_``.

        Returns
        -------
        modelpred.applications.calibration.CalibrationResult
            ``ece_regular``, and per repeat ``ece_modelpred``,
            ``ece_temperature``, accuracies and member counts.
        """
        from .applications.calibration import calibrate_ensembles, regular_members
        from .applications.memorization import surrogate_predictor

        self._check_theta_surrogate("calibration_ensemble")
        test = self._test_set(X_test, y_test)
        held = self._check_test_pair(X_held, y_held, required=False)
        if held is None:
            held = (self.X_train_, self.y_train_)
        seed = self.seed_ if random_state is None else _seed_from(random_state)
        return calibrate_ensembles(
            self.model_,
            regular_members(self.samples_["theta"], self.samples_["one_class"]),
            surrogate_predictor(self.surrogate_, self.X_train_, self.y_train_),
            len(self.y_train_),
            test,
            held,
            n_predicted=_check_positive_int(n_predicted, "n_predicted"),
            ratio=ratio,
            repeats=_check_positive_int(repeats, "repeats"),
            n_bins=_check_positive_int(n_bins, "n_bins"),
            seed=seed,
        )
