# Data stage: raw sources to data/{dataset}.h5 (train, test and pool splits).


rule mnist_features:
    output:
        f"{R}/features/mnist.h5",
    log:
        f"{R}/logs/features/mnist.log",
    benchmark:
        f"{R}/benchmarks/features/mnist.tsv"
    conda:
        "../envs/modelpred.yaml"
    # The CNN runs torch on one thread so that its features do not depend
    # on the core count.
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        options=config["mnist_features"],
        source_dir=mnist_source_dir(),
        seed=config["seed"],
    script:
        "../scripts/mnist_features.py"


# One rule per dataset, named data_{dataset}, so that each data file has
# exactly one writer and `snakemake data_iris` builds just that file.
for _name in DATASETS:

    rule:
        name:
            f"data_{_name}"
        input:
            features=(
                [f"{R}/features/mnist.h5"]
                if uses_mnist_features(_name)
                else ([f"{R}/features/{image_set_of(_name)}.h5"] if image_set_of(_name) else [])
            ),
        output:
            f"{R}/data/{_name}.h5",
        log:
            f"{R}/logs/data/{_name}.log",
        benchmark:
            f"{R}/benchmarks/data/{_name}.tsv"
        conda:
            "../envs/modelpred.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        params:
            name=_name,
            spec=data_spec(_name),
            seed=config["seed"],
            cache_dir=config["cache_dir"],
        script:
            "../scripts/build_data.py"
