"""Snakemake entry point of rule pretrain_backbone: train ResNet-18 on CIFAR-10 or an ImageFolder.

Params: ``options`` (the ``images.pretrain`` block), ``cifar10`` (the
``images.cifar10`` source), ``image_size``, ``stem``, ``seed`` and
``cache_dir``. Output: the backbone state_dict with its sidecar
``<output>.json``. A checkpoint ``<output>.ckpt`` is kept after every epoch
and a rerun resumes from it.
"""

from modelpred.data.backbone import PretrainConfig, load_pretraining_data, pretrain_backbone
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
options = dict(params.options)

train, test, source = load_pretraining_data(
    options["data"],
    params.image_size,
    params.seed,
    cifar10=params.cifar10,
    imagefolder=options.get("imagefolder"),
    max_images=options.get("max_images"),
    cache_dir=params.cache_dir,
)
config = PretrainConfig.from_dict({**options, "seed": params.seed, "stem": params.stem})
pretrain_backbone(train, test, snakemake.output[0], config, source)  # noqa: F821
