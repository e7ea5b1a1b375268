"""Prediction: names in, ranked and calibrated languages out, on every surface.

    base.py         Predictor (the recurrent kind), ranked, prepare
    ngram.py        the n-gram baseline's model and predictor
    ensemble.py     the weighted ensemble of members' calibrated probabilities
    calibrate.py    temperature scaling, calibration error, conformal sets
    evaluate.py     a run scored on a split
    explain.py      letter-by-letter occlusion
    stream.py       prediction streamed over tables of any size
    distributed.py  the same on Dask
    output.py       where results are written, atomically

May import the model core, data and runs; nothing above them.
"""
