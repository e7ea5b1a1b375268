"""The experiment: RNN vs LSTM vs GRU over seeds, and the suites beside it.

    compare.py   settings, reuse-or-train, statistics and verdicts, the seed suite, the runner
    accuracy.py  the accuracy suite: the n-gram baseline, the best single model, the preset
    insights.py  the dropout ablation and the hyperparameter grid
    probe.py     how much gradient reaches early steps

May import everything below it and the report; never the CLI or the server.
"""
