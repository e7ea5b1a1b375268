"""The report: figures (PNG) and the document (HTML and Markdown) from an experiment's summary.

    common.py    palette, number formats, matplotlib helpers, tables
    seed.py      the seed suite: curves, confusions, F1, gradient flow, cost, its findings in words
    insights.py  the dropout ablation and the hyperparameter grid
    accuracy.py  the best recipes beside the three cells, calibrated
    document.py  the report as blocks: introduction, findings, each suite's Section, setup, rules
    render.py    Markdown and self-contained HTML; write_report(summary, out_dir)

Reads a summary dictionary only: imports the model core's cell registry and the runs'
atomic writer, nothing else of namelab.
"""
