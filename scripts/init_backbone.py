"""Snakemake entry point of rule init_backbone: a ResNet-18 with seeded random weights.

Params: ``seed`` and ``stem``. Output: the backbone state_dict; its JSON
sidecar is written beside it (``<output>.json``).
"""

import logging

from modelpred.data.backbone import random_backbone, save_backbone
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
logger = logging.getLogger("modelpred.scripts.init_backbone")
params = snakemake.params  # noqa: F821

backbone = random_backbone(params.seed, params.stem)
save_backbone(
    snakemake.output[0],  # noqa: F821
    backbone,
    {"backbone": "random_init", "seed": params.seed, "source": "none (seeded random weights)"},
)
logger.info("wrote a random ResNet-18 (stem %s, seed %d)", params.stem, params.seed)
