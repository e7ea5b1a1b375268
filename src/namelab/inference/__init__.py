"""Inference: names in, ranked and calibrated languages out, on every surface.

    base.py         Predictor (the recurrent kind), ranked, prepare
    backends.py     what runs the forward pass: torch or onnxruntime
    ngram.py        the n-gram baseline's model and predictor
    ensemble.py     the weighted ensemble of members' calibrated probabilities
    load.py         load_predictor(run_dir): one reader for every kind of run folder
    calibrate.py    temperature scaling, calibration error, conformal sets
    priors.py       the population's make-up: re-weighting, EM, files of shares
    unknown.py      how unlike every training language a name is, and its threshold
    schema.py       the one output schema of every surface
    evaluate.py     a run scored on a split
    explain.py      letter-by-letter occlusion
    export.py       a run as an ONNX graph
    stream.py       prediction streamed over tables of any size
    distributed.py  the same on Dask
    output.py       where results are written, atomically

May import the model core, data and runs; nothing above them.
"""
