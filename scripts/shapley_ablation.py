"""Snakemake entry point of rule shapley_ablation: Shapley values of CIFAR-10 images.

Figures 11 (CIFAR-10-pretrained backbone) and 12 (random backbone) draw them.

Input: ``backbone``. Params: ``options`` (the ``images.shapley_ablation``
block), ``cifar10`` (the ``images.cifar10`` source), ``image_size``,
``extract_batch_size``, ``seed`` and ``cache_dir``. Output: the values file.
"""

from modelpred import io
from modelpred.applications.image_experiments import run_shapley_ablation
from modelpred.data.images import resolve_cifar10
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
options = params.options

run_shapley_ablation(
    snakemake.input.backbone,  # noqa: F821
    resolve_cifar10(params.cifar10, params.cache_dir),
    snakemake.output[0],  # noqa: F821
    n_train=options["n_train"],
    n_test=options["n_test"],
    permutations=options["permutations"],
    seed=params.seed,
    image_size=params.image_size,
    device=options["device"],
    extract_batch_size=params.extract_batch_size,
    extra_attrs=io.job_provenance(snakemake),  # noqa: F821
)
