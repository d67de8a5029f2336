"""Shared by the training tests: the smallest real training run."""

from macos_lite.training import TrainConfig


def tiny(out, **kw) -> TrainConfig:
    """``TrainConfig`` of a run of a few steps (smoke preset, 64 px, random weights) into ``out``; ``kw`` override."""
    cfg = dict(preset="smoke", out=str(out), image_size=64, batch_size=2, pretrain_steps=3, epochs=2,
               steps_per_epoch=2, num_train_images=20, val_pairs=4, progress=False, log_every=1, device="cpu",
               pretrained=False)
    cfg.update(kw)
    return TrainConfig(**cfg)
