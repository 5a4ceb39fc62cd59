"""Reports of the ModelPred paper: reference numbers, tables (CSV, Markdown, LaTeX), figures.

``reference`` loads the numbers the paper reports from package data,
``tables`` summarises evaluation files and renders the paper's tables beside
those numbers, and ``figures`` draws Figures 2 and 9.
"""

from modelpred.reporting.figures import figure2
from modelpred.reporting.reference import load_paper_values, paper_value
from modelpred.reporting.tables import (
    METRIC_TABLES,
    SETTINGS_TABLES,
    TABLE_NAMES,
    per_trial_metrics,
    read_eval,
    render_settings_table,
    render_table,
    summarize_eval,
    write_table,
)

__all__ = [
    "METRIC_TABLES",
    "SETTINGS_TABLES",
    "TABLE_NAMES",
    "figure2",
    "load_paper_values",
    "paper_value",
    "per_trial_metrics",
    "read_eval",
    "render_settings_table",
    "render_table",
    "summarize_eval",
    "write_table",
]
