# ModelPred: predict the model a learning algorithm trains from a training subset.
#
# Paths follow one grammar, all below config["results_dir"] (default results/):
#   features/{source}.h5                       learned feature extractors' output
#   data/{dataset}.h5                          train / test / pool splits
#   samples/{dataset}/{model}/shard-{k}.h5     permutation samples, one job per shard
#   samples/{dataset}/{model}.h5               merged permutation samples
#   surrogates/{dataset}/{model}/{method}.pt   DeepSets surrogates (+ .json sidecar)
#   eval/{dataset}/{model}/{scenario}.h5        deletion / addition scenarios, every method
#   tables/{table}.csv|md|tex, figures/{figure}.png|pdf
#   logs/…, benchmarks/…                       one per job
#
# `snakemake --cores N` builds every target that the config enables (rule all).


# The default config applies only when no --configfile is given, so that a
# config file (smoke.yaml) is complete on its own; paper.yaml starts from the
# default through its `extends` key.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/valuation_helpers.smk"
include: "rules/applications_helpers.smk"
include: "rules/images_helpers.smk"
include: "rules/data.smk"
include: "rules/sampling.smk"
include: "rules/surrogate.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"
include: "rules/valuation.smk"
include: "rules/applications.smk"
include: "rules/images.smk"


rule all:
    default_target: True
    input:
        all_targets(),
