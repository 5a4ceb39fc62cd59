"""The workflow's surrogate stage: data and samples files in, ``.pt`` and sidecar out.

Inputs are ``data/{dataset}.h5`` (the train split that the permutations index,
and the test split for the utility target) and
``samples/{dataset}/{model}.h5`` (permutations, θ of every prefix, solver
status and the base model's name and λ). The checkpoint for resuming lives at
``{out_pt}.ckpt``, a path Snakemake does not know of, so it survives a killed
job and is removed once both outputs are written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import FormatError, decode_provenance, package_versions, read_dataset, sha256_file
from ..models import make_model, model_from_config
from ..sampling import read_samples
from .config import SurrogateConfig, check_method
from .trainer import TrainingResult, fit_surrogate

logger = logging.getLogger(__name__)


def train_surrogate(
    data_path: str | os.PathLike,
    samples_path: str | os.PathLike,
    method: str,
    config: dict[str, Any] | SurrogateConfig | None,
    out_pt: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    cpu_threads: int | None = 1,
    provenance: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Train one surrogate from workflow files and write its state_dict and sidecar.

    Parameters
    ----------
    data_path : path
        ``data/{dataset}.h5``.
    samples_path : path
        ``samples/{dataset}/{model}.h5``; its ``base_model`` and ``lam``
        attributes choose the base model.
    method : str
        ``"modelpred"``, ``"paralearn"`` or ``"utllearn"``.
    config : dict or SurrogateConfig
        Hyper-parameters; keys are the fields of :class:`SurrogateConfig`.
    out_pt, out_json : path
        Outputs: the state_dict and its JSON sidecar.
    cpu_threads : int or None
        Torch threads when training on the CPU; see :func:`fit_surrogate`.
        The default of one makes the weights independent of the machine's
        core count.
    provenance : mapping, optional
        Root attributes as :func:`modelpred.io.job_provenance` returns them.
        The sidecar stores them, decoded, under its ``provenance`` key.

    Returns
    -------
    TrainingResult
    """
    method = check_method(method)
    if not isinstance(config, SurrogateConfig):
        config = SurrogateConfig.from_dict(config)
    dataset = read_dataset(data_path)
    arrays, attrs = read_samples(samples_path)
    # The samples record the base model's full settings (for nn its steps too).
    if "model_config" in attrs:
        model = model_from_config(json.loads(attrs["model_config"]))
    else:
        model = make_model(
            str(attrs["base_model"]), dataset.n_features, dataset.n_classes, float(attrs["lam"])
        )
    permutations = arrays["permutations"]
    if permutations.size and permutations.max() >= len(dataset.train):
        raise FormatError(
            f"{samples_path}: permutations index up to {permutations.max()} but "
            f"{data_path} has {len(dataset.train)} training points; the two files come from "
            "different runs, so rerun the sampling rule"
        )
    logger.info(
        "surrogate '%s' for %s/%s: %d permutations of %d points, %d one-class prefixes",
        method,
        dataset.name,
        model.name,
        permutations.shape[0],
        permutations.shape[1],
        int(arrays["one_class"].sum()),
    )
    metadata = {
        "dataset": dataset.name,
        "data_sha256": sha256_file(data_path),
        "samples_sha256": sha256_file(samples_path),
        "samples_seed": attrs.get("seed"),
        "package_versions": package_versions(),
    }
    if provenance is not None:
        metadata["provenance"] = decode_provenance(provenance)
    result = fit_surrogate(
        model,
        dataset.train.X,
        dataset.train.y,
        permutations,
        arrays["theta"],
        method=method,
        config=config,
        one_class=arrays["one_class"],
        converged=arrays["converged"],
        fixed=arrays["fixed"],
        X_test=dataset.test.X,
        y_test=dataset.test.y,
        checkpoint_path=checkpoint_path(out_pt),
        metadata=metadata,
        remove_checkpoint=False,
        cpu_threads=cpu_threads,
    )
    result.surrogate.save(out_pt, out_json)
    checkpoint_path(out_pt).unlink(missing_ok=True)
    logger.info("wrote %s and %s", out_pt, out_json)
    return result


def checkpoint_path(out_pt: str | os.PathLike) -> Path:
    """Return the resume checkpoint path that belongs to the output ``out_pt``."""
    return Path(f"{out_pt}.ckpt")
