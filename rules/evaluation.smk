# Evaluation stage: deletion and addition scenarios, ground truth and every method.


rule evaluate:
    input:
        data=f"{R}/data/{{dataset}}.h5",
        samples=f"{R}/samples/{{dataset}}/{{model}}.h5",
        surrogates=lambda wc: expand(
            f"{R}/surrogates/{wc.dataset}/{wc.model}/{{method}}.pt",
            method=[m for m in EVAL_SURROGATES if m in surrogate_methods(wc.dataset)],
        ),
    output:
        f"{R}/eval/{{dataset}}/{{model}}/{{scenario}}.h5",
    log:
        f"{R}/logs/eval/{{dataset}}/{{model}}/{{scenario}}.log",
    benchmark:
        f"{R}/benchmarks/eval/{{dataset}}/{{model}}/{{scenario}}.tsv"
    conda:
        "../envs/modelpred.yaml"
    # The evaluation runs torch on one thread so that every method's time
    # compares like with like.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        scenario=lambda wc: scenario_spec(wc.dataset),
        scenario_name="{scenario}",
        seed=config["seed"],
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
        model_options=lambda wc: model_options_of(wc.dataset, wc.model),
    script:
        "../scripts/evaluate.py"
