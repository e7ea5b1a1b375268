"""Run folders: what a training writes and every reader checks.

    checkpoint.py  the run-folder layout, atomic writes, manifest last, load_run
    env.py         the machine and library versions recorded with a run

May import the model core and data; nothing above them.
"""
