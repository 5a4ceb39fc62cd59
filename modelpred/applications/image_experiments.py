"""Image experiments with the last-layer NN: memorization, influence pairs, Shapley ablation.

Memorization and influence (Figure 6 left, Figure 8)
----------------------------------------------------
Feldman and Zhang's subsampling estimator (:mod:`.memorization`) on the
training split D of an image dataset with the ``nn`` base model:

    mem(i)     = mean_{j: i∈Sⱼ} 1[f_{A(Sⱼ)}(xᵢ) = yᵢ] − mean_{j: i∉Sⱼ} 1[f_{A(Sⱼ)}(xᵢ) = yᵢ],
    infl(i, z) = the same difference of means on a test point z = (x, y),

over random subsets Sⱼ of 0.7·|D| points. ModelPred predicts A(Sⱼ) for
1,000 subsets; the solver retrains 50, about the same compute, as in the
ModelPred paper. Each of ``trials`` repetitions draws new subsets. The
removal curves retrain the solver on {i : mem(i) ≤ τ} for a threshold grid
shared by both estimators (their values lie on one scale) and report test
accuracy, so they show which estimator better finds the points whose
removal helps.

Shapley ablation (Figures 11 and 12)
------------------------------------
Permutation-sampling Shapley values (:mod:`.shapley`) of ``n_train``
CIFAR-10 test-batch images. The utility is the negative mean loss on
``n_test`` further test-batch images of a last layer (``nn``, one row per
class) trained on the features of a CIFAR-10-pretrained backbone
(transfer) or of a randomly initialised one. The solver retrains every
prefix of every permutation, so the values are the solver's ground truth
at that number of permutations.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..models import BaseModel, LastLayerNN
from .memorization import (
    ESTIMATOR_LABELS,
    ThetaPredictor,
    as_counts,
    influence_pairs,
    save_figure,
    solver_predictor,
    subsampling_memorization,
    summarize_estimators,
    surrogate_predictor,
    threshold_grid,
)
from .shapley import empty_utility, shapley_from_prefix_utilities, theta_utilities

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- memorization
def batched_solver_predictor(model: BaseModel, X: np.ndarray, y: np.ndarray) -> ThetaPredictor:
    """Return a θ-predictor that retrains ``model`` on many 0/1 subsets in one batched call.

    Uses :meth:`LastLayerNN.fit_masks` where the model has it (all subsets
    descend together) and one fit per subset otherwise.
    """
    if not hasattr(model, "fit_masks"):
        return solver_predictor(model, X, y)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)

    def predict(masks: np.ndarray) -> np.ndarray:
        counts = as_counts(masks, len(y))
        if counts.max(initial=0) > 1:
            raise ValueError(
                "the batched solver takes plain subsets (0/1 masks), got counts above 1; "
                "use memorization.solver_predictor for multisets"
            )
        return model.fit_masks(X, y, counts.astype(bool))

    return predict


def _trial_seed(seed: int, trial: int, estimator: int) -> int:
    # Independent subset streams per trial and estimator, the same on every machine.
    return int(np.random.SeedSequence([int(seed), int(trial), int(estimator)]).generate_state(1)[0])


def _removal_accuracy(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    keep: np.ndarray,
) -> np.ndarray:
    """Return the solver's test accuracy after training on each kept set, shape (k,).

    ``keep`` is a bool array (k, n). Repeated kept sets are trained once.
    """
    unique, inverse = np.unique(keep, axis=0, return_inverse=True)
    if hasattr(model, "fit_masks"):
        theta = model.fit_masks(X, y, unique)
    else:
        theta = np.stack([model.fit(X[mask], y[mask]) for mask in unique])
    accuracy = np.asarray(model.numpy_eval("accuracy", theta, X_test, y_test))
    return accuracy[np.asarray(inverse).reshape(-1)]


def run_subsampling_memorization(
    data_path: str | os.PathLike,
    surrogate_path: str | os.PathLike,
    out_h5: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    modelpred_subsets: int = 1000,
    solver_subsets: int = 50,
    fraction: float = 0.7,
    trials: int = 10,
    n_thresholds: int = 20,
    max_removed_fraction: float = 0.5,
    seed: int = 0,
    extra_attrs: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Estimate memorization and influence by the solver and by ModelPred; write Figure 6's panel.

    D is the whole training split of ``data_path``, the evaluation points its
    test split. The base model is the one the surrogate's sidecar names,
    with its λ and, for ``nn``, its step count.

    Writes ``out_h5`` in the removal-panel layout of
    :func:`modelpred.applications.memorization.read_removal_panel`
    (``x_axis`` = ``threshold``, ``accuracy`` and ``n_removed`` with one row
    per trial), plus per estimator ``memorization`` (trials, n),
    ``influence`` (n, N; the mean over trials) and ``seconds`` (trials,), and
    ``train_index`` (n,) and ``test_index`` (N,), the rows of the features
    file. ``out_json`` gets the summary, which is also returned.
    ``extra_attrs`` (provenance) are merged into the root attributes of
    ``out_h5`` last.
    """
    from ..surrogate import load_surrogate

    dataset = io.read_dataset(data_path)
    surrogate = load_surrogate(surrogate_path)
    model = surrogate.model
    if (model.n_features, model.n_classes) != (dataset.n_features, dataset.n_classes):
        raise ValueError(
            f"{surrogate_path} predicts a model of {model.n_features} features and "
            f"{model.n_classes} classes, but dataset '{dataset.name}' has {dataset.n_features} "
            f"and {dataset.n_classes}; pass the surrogate trained on this dataset"
        )
    X, y = dataset.train.X, dataset.train.y
    X_test, y_test = dataset.test.X, dataset.test.y
    predictors = {
        "solver": (batched_solver_predictor(model, X, y), solver_subsets),
        "modelpred": (surrogate_predictor(surrogate, X, y), modelpred_subsets),
    }

    memorization = {name: np.empty((trials, len(y))) for name in predictors}
    influence = {name: np.zeros((len(y), len(y_test))) for name in predictors}
    seconds = {name: np.empty(trials) for name in predictors}
    for trial in range(trials):
        for index, (name, (predict, n_subsets)) in enumerate(predictors.items()):
            estimate = subsampling_memorization(
                predict,
                model,
                X,
                y,
                n_subsets=n_subsets,
                fraction=fraction,
                seed=_trial_seed(seed, trial, index),
                X_eval=X_test,
                y_eval=y_test,
            )
            memorization[name][trial] = estimate.memorization
            influence[name] += estimate.influence / trials
            seconds[name][trial] = estimate.seconds
            logger.info(
                "trial %d/%d, %s: %d subsets in %.2f s",
                trial + 1,
                trials,
                name,
                n_subsets,
                estimate.seconds,
            )

    # Both estimates are differences of accuracies on one scale, so one grid
    # of thresholds serves every estimator and trial.
    thresholds = threshold_grid(
        [values.ravel() for values in memorization.values()], n_thresholds, max_removed_fraction
    )
    full_accuracy = float(
        _removal_accuracy(model, X, y, X_test, y_test, np.ones((1, len(y)), dtype=bool))[0]
    )
    arrays: dict[str, np.ndarray] = {
        "train_index": _index_or_range(dataset.train),
        "test_index": _index_or_range(dataset.test),
    }
    for name, values in memorization.items():
        keep = values[:, None, :] <= thresholds[None, :, None]  # (trials, t, n)
        accuracy = _removal_accuracy(model, X, y, X_test, y_test, keep.reshape(-1, len(y)))
        arrays[f"estimators/{name}/thresholds"] = thresholds
        arrays[f"estimators/{name}/accuracy"] = accuracy.reshape(trials, len(thresholds))
        arrays[f"estimators/{name}/n_removed"] = (~keep).sum(axis=2)
        arrays[f"estimators/{name}/memorization"] = values
        arrays[f"estimators/{name}/influence"] = influence[name]
        arrays[f"estimators/{name}/seconds"] = seconds[name]

    summary = summarize_estimators(
        {name: values.mean(axis=0) for name, values in memorization.items()},
        {name: float(values.sum()) for name, values in seconds.items()},
    )
    summary["full_accuracy"] = full_accuracy
    backbone = str(dataset.attrs.get("backbone", "unknown"))
    labels = {
        "solver": f"{ESTIMATOR_LABELS['solver']}, {solver_subsets} subsets",
        "modelpred": f"{ESTIMATOR_LABELS['modelpred']}, {modelpred_subsets} subsets",
    }
    attrs = {
        **io.provenance_attrs(inputs={"data": str(data_path), "surrogate": str(surrogate_path)}),
        "dataset": dataset.name,
        "model": model.name,
        "backbone": backbone,
        "form": "subsampling",
        "x_axis": "threshold",
        "trials": int(trials),
        "fraction": float(fraction),
        "seed": int(seed),
        "full_accuracy": full_accuracy,
        "estimator_labels": json.dumps(labels),
        "title": (
            f"{dataset.name}, {model.name.upper()} (backbone {backbone})\nsubsampling "
            f"memorization of {len(y)} training images, {trials} trials"
        ),
        **(extra_attrs or {}),
    }
    io.write_arrays(out_h5, arrays, attrs)
    io.write_json(
        out_json,
        {"dataset": dataset.name, "model": model.name, "backbone": backbone, **summary},
    )
    logger.info(
        "ModelPred (%d subsets) took %.1f%% of the solver's time (%d subsets); Spearman "
        "correlation of the mean estimates %.3f; test accuracy on all of D %.3f",
        modelpred_subsets,
        100 * summary["time_ratio"],
        solver_subsets,
        summary["spearman"],
        full_accuracy,
    )
    return summary


def _index_or_range(split: io.Split) -> np.ndarray:
    return np.arange(len(split)) if split.index is None else np.asarray(split.index, np.int64)


# --------------------------------------------------------------------------- image figures
def _show_image(axes, image: np.ndarray, caption: str, frame_color=None) -> None:
    axes.imshow(image)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel(caption, fontsize=6, labelpad=2)
    axes.grid(False)
    for spine in axes.spines.values():
        spine.set_visible(frame_color is not None)
        if frame_color is not None:
            spine.set_edgecolor(frame_color)
            spine.set_linewidth(2)


def figure_influence_pairs(
    memorization_path: str | os.PathLike,
    features_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    n_rows: int = 5,
    per_side: int = 3,
    classes: Sequence[str] | None = None,
) -> list[Path]:
    """Draw Figure 8: the most memorized training images with their extreme-influence test images.

    Memorization and influence are ModelPred's (the mean over trials) from
    :func:`run_subsampling_memorization`; images come from the display
    copies in the features file.
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    arrays, attrs = io.read_arrays(
        memorization_path,
        (
            "train_index",
            "test_index",
            "estimators/modelpred/memorization",
            "estimators/modelpred/influence",
        ),
    )
    memorization = arrays["estimators/modelpred/memorization"].mean(axis=0)
    influence = arrays["estimators/modelpred/influence"]
    features, feature_attrs = io.read_arrays(features_path, ("y", "images"))
    labels, images = features["y"], features["images"]
    class_names = list(classes or json.loads(str(feature_attrs.get("classes", "[]"))))
    pairs = influence_pairs(memorization, influence, n_rows, per_side)
    train_rows = arrays["train_index"]
    test_rows = arrays["test_index"]

    def caption(row: int, value: float, name: str) -> str:
        label = class_names[labels[row]] if class_names else str(labels[row])
        return f"{label}, {name} {value:+.2f}"

    sns.set_theme(style="white", context="paper")
    palette = sns.color_palette("colorblind", n_colors=3)
    columns = 1 + 2 * per_side
    figure = Figure(figsize=(1.2 * columns + 0.4, 1.35 * len(pairs) + 0.8), layout="constrained")
    axes = figure.subplots(len(pairs), columns, squeeze=False)
    for row, pair in enumerate(pairs):
        train = pair["train"]
        train_row = train_rows[train]
        _show_image(
            axes[row, 0], images[train_row], caption(train_row, memorization[train], "mem"), "black"
        )
        for side, (key, color) in enumerate((("high", palette[2]), ("low", palette[0]))):
            for slot, test in enumerate(pair[key]):
                _show_image(
                    axes[row, 1 + side * per_side + slot],
                    images[test_rows[test]],
                    caption(test_rows[test], influence[train, test], "infl"),
                    color,
                )
    axes[0, 0].set_title("training image", fontsize=8)
    axes[0, 1].set_title(f"{per_side} highest-influence test images", fontsize=8, loc="left")
    axes[0, 1 + per_side].set_title(
        f"{per_side} lowest-influence test images", fontsize=8, loc="left"
    )
    figure.suptitle(
        f"{attrs.get('dataset', '')}, NN (backbone {attrs.get('backbone', 'unknown')}): "
        "the most memorized training images (ModelPred)\n"
        "and the test images they influence most and least",
        fontsize=9,
    )
    return save_figure(figure, out_prefix)


# --------------------------------------------------------------------------- Shapley ablation
def draw_image_subset(n_images: int, n_needed: int, seed: int) -> np.ndarray:
    """Return ``n_needed`` distinct image rows of ``n_images``, seeded, in drawn order."""
    if n_needed > n_images:
        raise ValueError(
            f"the Shapley ablation needs {n_needed} images (n_train + n_test) but the source has "
            f"{n_images}; lower images.shapley_ablation.n_train or n_test"
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x53484150]))
    return rng.choice(n_images, size=n_needed, replace=False)


def run_shapley_ablation(
    backbone_path: str | os.PathLike,
    cifar10_root: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    n_train: int = 200,
    n_test: int = 500,
    permutations: int = 50,
    seed: int = 0,
    image_size: int = 32,
    lam: float = 1.0,
    device: str = "auto",
    extract_batch_size: int = 64,
    block: int = 5,
    extra_attrs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute permutation Shapley values of CIFAR-10 images with a frozen backbone.

    The images come from CIFAR-10's test batch: a seeded draw of
    ``n_train + n_test``, the same for every backbone. The last layer is
    :class:`~modelpred.models.LastLayerNN` with ten rows, trained by the
    solver on every prefix of ``permutations`` permutations, ``block`` at a
    time so that memory stays at ``block · n_train`` parameter vectors.

    Writes ``out_h5``: ``values`` (n_train,), ``labels`` (n_train,),
    ``images`` (n_train, 32, 32, 3) uint8, ``source_index`` (n_train,), and
    root attributes ``backbone``, ``backbone_source``, ``classes``,
    ``full_test_accuracy`` (of the last layer on all n_train images),
    ``permutations``, ``seconds`` and provenance, with ``extra_attrs``
    merged in last. Returns the attributes.
    """
    from ..data.backbone import backbone_attrs, extract_features, load_backbone
    from ..data.common import rescale_by_max_norm
    from ..data.images import CIFAR10_TEST_FILE, cifar10_folder, read_cifar10_binary, resize_square
    from ..sampling import draw_permutation

    started = time.perf_counter()
    folder = cifar10_folder(cifar10_root)
    source = read_cifar10_binary(folder, [CIFAR10_TEST_FILE])
    rows = draw_image_subset(len(source), n_train + n_test, seed)
    chosen = source.subset(rows)
    backbone, metadata = load_backbone(backbone_path)
    info = backbone_attrs(backbone, metadata, str(metadata.get("backbone", "checkpoint")))
    features = extract_features(
        backbone, resize_square(chosen.images, image_size), extract_batch_size, device
    )
    _, (X, X_test) = rescale_by_max_norm("cifar10", features[:n_train], features[n_train:])
    y, y_test = chosen.labels[:n_train], chosen.labels[n_train:]

    model = LastLayerNN(X.shape[1], len(chosen.classes), lam=lam, device=device)
    full = model.fit_masks(X, y, np.ones((1, n_train), dtype=bool))
    full_accuracy = float(model.numpy_eval("accuracy", full, X_test, y_test)[0])
    perms = np.stack([draw_permutation(seed, t, np.arange(n_train)) for t in range(permutations)])
    utilities = np.empty((permutations, n_train))
    for start in range(0, permutations, block):
        fits = model.fit_prefixes(X, y, perms[start : start + block])
        utilities[start : start + block] = theta_utilities(model, fits.theta, X_test, y_test)
        logger.info(
            "Shapley ablation (backbone %s): %d of %d permutations, %.0f s",
            info["backbone"],
            min(start + block, permutations),
            permutations,
            time.perf_counter() - started,
        )
    values = shapley_from_prefix_utilities(perms, utilities, empty_utility(model, X_test, y_test))
    attrs = {
        **info,
        **io.provenance_attrs(
            config={
                "n_train": n_train,
                "n_test": n_test,
                "permutations": permutations,
                "seed": seed,
                "image_size": image_size,
                "lam": lam,
            },
            inputs={"backbone": str(backbone_path)},
        ),
        "classes": json.dumps(list(chosen.classes)),
        "full_test_accuracy": full_accuracy,
        "permutations": int(permutations),
        "model_config": json.dumps(model.config(), sort_keys=True),
        "seconds": time.perf_counter() - started,
        **(extra_attrs or {}),
    }
    arrays = {
        "values": values,
        "labels": y,
        "images": chosen.images[:n_train].transpose(0, 2, 3, 1).copy(),
        "source_index": rows[:n_train].astype(np.int64),
    }
    io.write_arrays(out_h5, arrays, attrs)
    logger.info(
        "Shapley values of %d images (backbone %s): last-layer test accuracy %.3f, %.0f s",
        n_train,
        info["backbone"],
        full_accuracy,
        attrs["seconds"],
    )
    return attrs


def figure_shapley_images(
    values_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    n_classes: int = 4,
    per_side: int = 3,
    title: str,
) -> list[Path]:
    """Draw the lowest- and highest-valued images of the classes with the most valued images.

    Classes are ordered by how many of the valued images they have, ties by
    class index. Each row shows the ``per_side`` lowest-valued images of a
    class, then its ``per_side`` highest-valued ones.
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    arrays, attrs = io.read_arrays(values_path, ("values", "labels", "images"))
    values, labels, images = arrays["values"], arrays["labels"], arrays["images"]
    classes = json.loads(str(attrs.get("classes", "[]")))
    counts = np.bincount(labels, minlength=len(classes))
    shown = [c for c in np.argsort(-counts, kind="stable") if counts[c] >= 2][:n_classes]
    if not shown:
        raise ValueError(f"{values_path}: no class has two valued images to show")

    sns.set_theme(style="white", context="paper")
    palette = sns.color_palette("colorblind", n_colors=3)
    columns = 2 * per_side
    figure = Figure(figsize=(1.15 * columns + 1.2, 1.3 * len(shown) + 0.9), layout="constrained")
    axes = figure.subplots(len(shown), columns, squeeze=False)
    for row, label in enumerate(shown):
        members = np.flatnonzero(labels == label)
        ordered = members[np.argsort(values[members], kind="stable")]
        low, high = ordered[:per_side], ordered[::-1][:per_side][::-1]
        for slot in range(columns):
            cell = axes[row, slot]
            group, color = (low, palette[0]) if slot < per_side else (high, palette[2])
            position = slot if slot < per_side else slot - per_side
            if position < len(group):
                point = group[position]
                _show_image(cell, images[point], f"SV {values[point]:+.2e}", color)
            else:
                cell.axis("off")
        axes[row, 0].set_ylabel(classes[label] if classes else str(label), fontsize=8)
    axes[0, 0].set_title(f"{per_side} lowest values", fontsize=8, loc="left")
    axes[0, per_side].set_title(f"{per_side} highest values", fontsize=8, loc="left")
    accuracy = float(attrs.get("full_test_accuracy", float("nan")))
    figure.suptitle(
        f"{title}\nbackbone {attrs.get('backbone', 'unknown')}, last-layer test accuracy "
        f"{accuracy:.3f}, {int(attrs.get('permutations', 0))} permutations",
        fontsize=9,
    )
    return save_figure(figure, out_prefix)
