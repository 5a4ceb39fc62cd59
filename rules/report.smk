# Report stage: paper tables (CSV, Markdown, LaTeX) and figures (PNG, PDF).


# The report category (paper section) and subcategory of each table of this rule.
TABLE_SECTIONS = {
    "table1_settings": ("1 Experimental setup (IV-A)", None),
    "table2_deletion_lr": ("2 Predicting trained models (IV-B)", "2.1 Group deletion"),
    "table3_addition_lr": ("2 Predicting trained models (IV-B)", "2.2 Group addition"),
    "table7_deletion_svm": (
        "4 Additional results (Appendix C)",
        "4.1 SVM as the base model",
    ),
    "table8_addition_svm": (
        "4 Additional results (Appendix C)",
        "4.1 SVM as the base model",
    ),
    "table9_larger_settings": (
        "4 Additional results (Appendix C)",
        "4.3 Larger training sets",
    ),
    "table10_larger": ("4 Additional results (Appendix C)", "4.3 Larger training sets"),
}


# One rule per table, named after it (`snakemake table2_deletion_lr`), so that
# each table's report entry gets its own caption.
for _table in SETTINGS_TABLES + METRIC_TABLES:

    rule:
        name:
            _table
        input:
            table_inputs(_table),
        output:
            report(
                f"{R}/tables/{_table}.csv",
                caption=f"../report/tables/{_table}.rst",
                category=TABLE_SECTIONS[_table][0],
                subcategory=TABLE_SECTIONS[_table][1],
            ),
            f"{R}/tables/{_table}.md",
            f"{R}/tables/{_table}.tex",
        log:
            f"{R}/logs/tables/{_table}.log",
        conda:
            "../envs/modelpred.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            name=_table,
            enabled=table_datasets(_table),
            settings=table_settings(_table),
            all_datasets=table_covered_datasets(_table),
        script:
            "../scripts/report_table.py"


rule figure2:
    input:
        deletion=f"{R}/eval/{{dataset}}/{{model}}/deletion.h5",
        addition=f"{R}/eval/{{dataset}}/{{model}}/addition.h5",
    output:
        report(
            f"{R}/figures/fig2_{{dataset}}_{{model}}.png",
            caption="../report/figures/fig2_dataset_lr.rst",
            category="2 Predicting trained models (IV-B)",
            subcategory="2.3 Predicted against retrained",
        ),
        f"{R}/figures/fig2_{{dataset}}_{{model}}.pdf",
    log:
        f"{R}/logs/figures/fig2_{{dataset}}_{{model}}.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        title=lambda wc: f"{wc.dataset}, {wc.model.upper()}: predicted models against retraining",
    script:
        "../scripts/report_figure.py"


# The table list is known only once every rules file has defined its targets.
rule results_summary:
    input:
        lambda wildcards: summary_tables(),
    output:
        f"{R}/summary.md",
    log:
        f"{R}/logs/summary.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/results_summary.py"
