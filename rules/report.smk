# Report stage: paper tables (CSV, Markdown, LaTeX) and figures (PNG, PDF).


rule table:
    input:
        lambda wc: table_inputs(wc.table),
    output:
        multiext(f"{R}/tables/{{table}}", ".csv", ".md", ".tex"),
    log:
        f"{R}/logs/tables/{{table}}.log",
    params:
        name="{table}",
        enabled=lambda wc: table_datasets(wc.table),
        settings=lambda wc: table_settings(wc.table),
        all_datasets=DATASETS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/report_table.py"


rule figure2:
    input:
        deletion=f"{R}/eval/{{dataset}}/{{model}}/deletion.h5",
        addition=f"{R}/eval/{{dataset}}/{{model}}/addition.h5",
    output:
        multiext(f"{R}/figures/fig2_{{dataset}}_{{model}}", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig2_{{dataset}}_{{model}}.log",
    params:
        title=lambda wc: f"{wc.dataset}, {wc.model.upper()}: predicted models against retraining",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/report_figure.py"
