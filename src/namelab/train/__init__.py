"""Training: the epoch, validation, the resumable driver, presets and data-parallel runs.

    loop.py     TrainConfig, train_epoch, validate, train (writes a run folder)
    ddp.py      DistributedDataParallel under torchrun (gloo on CPU, NCCL on CUDA)
    presets.py  named recipes (--preset best): members, then their ensemble

May import the model core, data, runs and inference; nothing above them.
"""
