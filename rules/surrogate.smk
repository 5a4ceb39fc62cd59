# Surrogate stage: DeepSets trained on the permutation samples (GPU-tagged).


rule train_surrogate:
    input:
        data=f"{R}/data/{{dataset}}.h5",
        samples=f"{R}/samples/{{dataset}}/{{model}}.h5",
    output:
        model=f"{R}/surrogates/{{dataset}}/{{model}}/{{method}}.pt",
        sidecar=f"{R}/surrogates/{{dataset}}/{{model}}/{{method}}.json",
    log:
        f"{R}/logs/surrogates/{{dataset}}/{{model}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/surrogates/{{dataset}}/{{model}}/{{method}}.tsv"
    conda:
        "../envs/modelpred.yaml"
    # Training runs torch on one thread, so the weights do not depend on
    # the core count; separate jobs use the other cores.
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    params:
        method="{method}",
        config=lambda wc: surrogate_config(wc.dataset),
        seed=config["seed"],
    script:
        "../scripts/train_surrogate.py"
