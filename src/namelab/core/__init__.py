"""The model core: the three hand-written cells, their batched engine and the classifier.

    cells.py    RNNCell, LSTMCell, GRUCell: one step each, the equations in their docstrings
    engine.py   the hand engine: a whole batch through a cell, with a hand-written backward
    native.py   the LSTM step's gate math in C++, built on first use (torch's operators otherwise)
    model.py    ModelConfig and CharClassifier(config): ids and lengths in, logits out
    metrics.py  accuracy, macro-F1, per-class figures, confusion matrices

Imports torch and numpy only: nothing else in namelab.
"""
