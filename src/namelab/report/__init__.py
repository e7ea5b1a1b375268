"""The report: figures (PNG) and the document (HTML and Markdown) from an experiment's summary.

    render.py   figures, blocks per section, rendering, write_report

Reads a summary dictionary only: imports the model core's cell registry and the runs'
atomic writer, nothing else of namelab.
"""
