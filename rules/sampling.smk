# Sampling stage: Algorithm 1 permutation sampling, sharded by permutation.


rule sample_shard:
    input:
        data=f"{R}/data/{{dataset}}.h5",
    output:
        f"{R}/samples/{{dataset}}/{{model}}/shard-{{shard}}.h5",
    log:
        f"{R}/logs/samples/{{dataset}}/{{model}}/shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/samples/{{dataset}}/{{model}}/shard-{{shard}}.tsv"
    conda:
        "../envs/modelpred.yaml"
    # One thread per shard keeps the solver's reductions in a fixed order,
    # so results do not depend on the core count; shards give the parallelism.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        seed=config["seed"],
        shards=SHARDS,
        block=lambda wc: dataset_spec(wc.dataset)["block"] or config["sampling"]["block"],
        n_permutations=lambda wc: n_permutations_of(config, wc.dataset),
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
        model_options=lambda wc: model_options_of(wc.dataset, wc.model),
    script:
        "../scripts/sample_shard.py"


rule merge_samples:
    input:
        get_shards,
    output:
        f"{R}/samples/{{dataset}}/{{model}}.h5",
    log:
        f"{R}/logs/samples/{{dataset}}/{{model}}-merge.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/merge_samples.py"
