"""`macos_lite.sweep`: the scores of notebook 11's variants and their cached runner."""

import math
import statistics

import numpy as np
import pytest

from macos_lite import sweep
from macos_lite.data.registry import get_pairs
from macos_lite.evaluation import IdentityMethod, ModelMethod, evaluate_matching
from macos_lite.losses import LossConfig
from macos_lite.presets import get_preset
from macos_lite.training import NonFiniteLossError, Trainer
from training_configs import tiny


def test_standard_error_matches_the_statistics_module():
    values = [0.2, 0.5, 0.9, 0.4]
    assert sweep.standard_error(values) == pytest.approx(statistics.stdev(values) / math.sqrt(len(values)))
    assert math.isnan(sweep.standard_error([0.3]))


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A tiny model after 3 pre-training steps, and 4 synthetic validation pairs at its size."""
    out = tmp_path_factory.mktemp("start")
    trainer = Trainer(tiny(out, epochs=0))
    trainer.fit()
    return trainer, out / "last.pt", get_pairs("synthetic", split="val", image_size=64, num_pairs=4)


def test_score_agrees_with_the_evaluation_protocol(start):
    trainer, _, pairs = start
    scores = sweep.score(trainer.model, pairs, batch_size=2)
    method = ModelMethod(trainer.model)
    assert scores["pck"] == pytest.approx(evaluate_matching(method, pairs, normalizers=("image",)).pck("image", 0.1))


def test_score_of_all_foreground_masks_is_the_foreground_share(start, monkeypatch):
    """All-foreground masks: J of an image is its share of foreground pixels, counted here with numpy."""
    _, _, pairs = start
    monkeypatch.setattr(sweep, "ModelMethod", lambda model: IdentityMethod())  # identity theta, all-foreground
    shares = [float(np.asarray(pairs[i][key]).mean()) for i in range(len(pairs)) for key in ("mask_A", "mask_B")]
    shares = [x for x in shares if x > 0]
    scores = sweep.score(None, pairs, batch_size=2)
    assert scores["jaccard"] == pytest.approx(np.mean(shares))
    assert scores["jaccard_se"] == pytest.approx(statistics.stdev(shares) / math.sqrt(len(shares)))


def test_runner_trains_once_then_reads_its_cache(start, tmp_path, monkeypatch):
    _, checkpoint, pairs = start
    run = sweep.SweepRunner(get_preset("smoke", image_size=64), checkpoint, pairs, tmp_path, steps=1, batch_size=2,
                            overrides=dict(image_size=64, num_train_images=20, pretrained=False, device="cpu"))
    loss = LossConfig(weights={"matching": 1.0}, weighting="none")
    first = run("matching", loss)
    assert set(sweep.RESULT_KEYS) <= set(first) and first["seed"] == 0
    assert len(list(tmp_path.glob("matching-seed0-*.json"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("a cached variant must not train again")

    monkeypatch.setattr(Trainer, "fit", refuse)
    assert run("matching", loss) == first
    assert run("the same settings", LossConfig(weights={"matching": 1.0}, weighting="none")) == first  # a twin
    assert len(list(tmp_path.glob("the same settings-seed0-*.json"))) == 1
    with pytest.raises(AssertionError, match="must not train"):
        run("matching", LossConfig(weights={"matching": 2.0}, weighting="none"))  # other settings train
    with pytest.raises(AssertionError, match="must not train"):
        run("matching", loss, seed=1)  # another seed is another result


def test_a_diverged_variant_is_a_result(start, tmp_path, monkeypatch):
    _, checkpoint, pairs = start

    def diverge(self):
        raise NonFiniteLossError("step 0 (weak): loss term 'matching' is not finite")

    monkeypatch.setattr(Trainer, "fit", diverge)
    run = sweep.SweepRunner(get_preset("smoke", image_size=64), checkpoint, pairs, tmp_path, steps=1, batch_size=2,
                            overrides=dict(image_size=64, num_train_images=20, pretrained=False, device="cpu"))
    result = run("huge", LossConfig(weights={"matching": 1e9}))
    assert all(math.isnan(result[k]) for k in sweep.RESULT_KEYS) and result["weights"]["matching"] == 1e9


def test_variants_of_a_seed_share_one_prior_and_score_as_if_each_made_its_own(start, tmp_path, monkeypatch):
    """The prior is co-localised once per seed; a variant that reuses it scores exactly as one that made its own."""
    from macos_lite import pseudo_masks

    _, checkpoint, pairs = start
    settings = dict(overrides=dict(image_size=64, num_train_images=12, pretrained=False, device="cpu"), steps=2,
                    batch_size=2)
    loss = LossConfig(weights={"matching": 1.0, "prior": 1.0}, weighting="none")
    alone = sweep.SweepRunner(get_preset("smoke", image_size=64), checkpoint, pairs, tmp_path / "a", **settings)
    reference = alone("prior", loss)

    calls = []
    made = pseudo_masks.PseudoMasks.from_images
    monkeypatch.setattr(pseudo_masks.PseudoMasks, "from_images",
                        classmethod(lambda cls, *a, **k: calls.append(1) or made(*a, **k)))
    shared = sweep.SweepRunner(get_preset("smoke", image_size=64), checkpoint, pairs, tmp_path / "b", **settings)
    shared("other", LossConfig(weights={"matching": 1.0, "prior": 3.0}, weighting="none"))
    reused = shared("prior", loss)
    assert len(calls) == 1  # the second variant did not co-localise again
    for key in ("pck", "jaccard", "loss_first", "loss_last"):
        assert reused[key] == pytest.approx(reference[key], abs=1e-6), key
    shared("prior", loss, seed=1)  # another seed: other images, its own prior
    assert len(calls) == 2


def test_a_reused_prior_that_does_not_fit_the_training_set_is_refused(start, tmp_path):
    import torch

    trainer, checkpoint, _ = start
    cfg = tiny(tmp_path / "run", init_weights=str(checkpoint), pretrain_steps=0, num_train_images=12)
    wrong = (torch.zeros(5, 3, 64, 64, dtype=torch.uint8), torch.zeros(5, 1, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="guide must be a uint8 tensor"):
        Trainer(cfg, prior=wrong)
