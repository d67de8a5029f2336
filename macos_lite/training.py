"""Training: synthetic strong-supervision pre-training of G, then weakly supervised joint training.

One :class:`Trainer` runs both phases on a single global step counter:

* steps ``[0, pretrain_steps)``: the CNNGeo recipe (:mod:`macos_lite.pretrain`) on single images of the
  *pre-training pool* (no labels used), encoder frozen, with its own learning-rate schedule (linear
  warm-up over ``pretrain_warmup`` steps, then a cosine decay to zero at the end of the phase) and
  gradient clipping at ``pretrain_grad_clip``. At a constant rate the grid loss falls and then climbs
  back; the decay lets it settle. The pool (``pretrain_images``) is the training set's images plus, for
  a real dataset, the other real photographs that are available and are not evaluated on (the Weizmann
  horses); a folder of images or '+'-joined dataset names replace it. The checkpoint at the end of the
  phase is scored on the validation pairs (``phase: "pretrain_done"`` in ``log.jsonl``) and kept as
  ``best.pt`` while no later epoch validates better;
* then ``epochs x steps_per_epoch`` weak steps on same-category tuples with eq 12
  (:class:`macos_lite.losses.MaCoSLoss`), validated after every epoch, the best checkpoint kept.

Validation holds data out of training and pre-training: ``val_fraction`` of each PF-WILLOW category's images
(their annotated pairs score PCK), whole iCoseg groups (their masks score J). ``log.jsonl`` starts with a
``phase: "setup"`` record naming the validation data and the pre-training pool.

Everything a step uses -- which images, which random warps -- is a function of ``(seed, step)``, and a
checkpoint holds the model, optimiser, scheduler, RNG states and counters, so ``resume=True``
continues exactly where a run stopped (bit-identical on CPU). Multi-GPU/multi-node: launch the same
command with ``torchrun``; each process takes its share of every global batch
(DistributedDataParallel, gloo on CPU, nccl on CUDA).

Around the :class:`Trainer`: :mod:`macos_lite.training_data` (which images and pairs, the step batches),
:mod:`macos_lite.validation` (the validation scores), :mod:`macos_lite.run_folder` (the run folder and its
log) and :mod:`macos_lite.checkpoints`. Taught in notebook 08 (training).
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .backbones import build_perceptual, set_memory_format
from .cli_common import NoSpaceError, unwrapped_batches
from .checkpoints import load_init_weights, load_training_checkpoint, load_weights, model_checkpoint, save_checkpoint
from .device import resolve_device
from .losses import LossConfig, MaCoSLoss
from .model import MaCoSNet
from .pretrain import lr_schedule, pretrain_loss
from .run_folder import append_log, open_run_folder, open_tensorboard, start_log, write_log
from .run_state import distributed_env, rng_state, seed_everything, set_rng_state
from .stop_signals import StopRequests, TrainingInterrupted
from .train_config import TrainConfig
from .training_data import (TrainingImages, holdout, pair_names, step_loader, training_data, validation_data,
                            validation_images)
from .validation import Validation


class NonFiniteLossError(FloatingPointError):
    """A loss term or the gradient became NaN/inf; the message names the step and the term."""


def _loss_config(d) -> LossConfig:
    return d if isinstance(d, LossConfig) else LossConfig(**d)


class Trainer:
    """Builds the model, data, loss and optimiser from a :class:`TrainConfig`; :meth:`fit` trains. ``prior``: the
    ``prior_inputs`` of an earlier trainer on the same images and start weights, reused (notebook 11's sweeps)."""

    def __init__(self, config: TrainConfig | None = None, *, prior=None, **overrides):
        config = config or TrainConfig()
        for k, v in overrides.items():
            setattr(config, k, v)
        config.loss = _loss_config(config.loss)
        self.cfg = cfg = config.resolved()
        self.rank, self.world, local_rank = distributed_env()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        self.out = Path(cfg.out)
        if self.is_main:  # lock the run folder; refuse to replace another run in it
            self._lock = open_run_folder(self.out, cfg)
        seed_everything(cfg.seed)

        self.model = MaCoSNet(cfg.backbone, cfg.image_size, pretrained=cfg.pretrained,
                              backbone_mode=cfg.backbone_mode, feature_stride=cfg.feature_stride,
                              decoder_input=cfg.decoder_input, feature_stages=cfg.feature_stages).to(self.device)
        if cfg.init_weights:
            load_init_weights(self.model, cfg.init_weights, cfg)
        self.use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")
        if cfg.channels_last == "on" or (cfg.channels_last == "auto" and self.device.type == "cuda"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.perceptual = build_perceptual(cfg.backbone, pretrained=cfg.pretrained).to(self.device) \
            if cfg.loss.active("contrast") else None
        if cfg.channels_last == "off":  # the convolutions' inputs too (channels-last by default)
            set_memory_format(torch.contiguous_format, self.model, self.perceptual)
        self.criterion = MaCoSLoss(cfg.loss, self.perceptual)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.forward = torch.compile(self.net) if cfg.compile else self.net

        self.held_part, self.held_out = holdout(cfg)
        self.images, self.view, self.pool_sources = training_data(cfg, self.held_part, self.held_out)
        self.pseudo = self._build_pseudo_masks(prior) if cfg.loss.active("prior") else None
        self.val_pairs, self.val_normalizer, self.val_source = validation_data(cfg, self.held_part, self.held_out)
        self.val_images, val_groups = validation_images(cfg, self.held_part, self.held_out)
        self.val_source = self.val_source or val_groups
        self.validation = Validation(self.val_pairs, self.val_normalizer, cfg.batch_size, self.device,
                                     cfg.loss.needs_masks, images=self.val_images)
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, len(self.view) // cfg.batch_size)
        self.total_steps = cfg.pretrain_steps + cfg.epochs * self.steps_per_epoch

        groups = {"encoder.": cfg.backbone_lr_scale, "decoder.": cfg.decoder_lr_scale}
        params = {prefix: [] for prefix in (*groups, "")}
        for name, p in self.model.named_parameters():
            params[next((g for g in groups if name.startswith(g)), "")].append(p)
        self.optimizer = torch.optim.Adam([{"params": params[""], "lr": cfg.lr}] +
                                          [{"params": params[g], "lr": cfg.lr * scale} for g, scale in groups.items()],
                                          weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step, self.best, self.history = 0, -math.inf, []
        self._saved_step = None  # the step of the last.pt written (or resumed from)
        self.stopped_early = False
        self._stop = None
        if cfg.resume:
            self._resume()

    # ------------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _lr_factor(self, step: int) -> float:
        """Learning rate of step ``step`` over ``lr``: :func:`macos_lite.pretrain.lr_schedule` of each phase
        (``pretrain_lr`` with ``pretrain_schedule`` and its warm-up, then ``lr`` with ``scheduler``)."""
        cfg = self.cfg
        if step < cfg.pretrain_steps:
            return cfg.pretrain_lr / cfg.lr * lr_schedule(step, cfg.pretrain_steps, cfg.pretrain_schedule,
                                                          cfg.pretrain_warmup)
        return lr_schedule(step - cfg.pretrain_steps, self.total_steps - cfg.pretrain_steps, cfg.scheduler)

    def _build_pseudo_masks(self, reuse=None):
        """The co-localisation prior of the training set (no labels) as the first pseudo-masks (or ``reuse``'s,
        checked to fit); D's last bias starts at the prior's foreground fraction when D is untrained."""
        from .losses.prior import warm_start_bias
        from .pseudo_masks import initial_pseudo_masks

        cfg = self.cfg
        if cfg.augment:
            raise ValueError("the prior loss (lambda_prior > 0) needs augment off: its pseudo-masks are not cropped "
                             "with the images; drop --augment or set --lambda-prior 0")
        self.train_images = TrainingImages(cfg, getattr(self.view, "images", None), self.view, self.held_part,
                                            self.held_out)
        t0 = time.perf_counter()
        self._guide, pseudo = initial_pseudo_masks(self.train_images, self.model.encoder, cfg, self.device, reuse)
        self.prior_inputs, self.prior_seconds = (self._guide, pseudo.prior), time.perf_counter() - t0
        if not cfg.resume and float(self.model.decoder.up1.bias.detach().abs().max()) == 0.0:
            warm_start_bias(self.model.decoder, pseudo.foreground_fraction)
        return pseudo

    def _refresh_pseudo_masks(self) -> dict:
        """Self-training: mix the model's masks (averaged over partners) into the pseudo-masks."""
        from .pseudo_masks import model_masks

        t0 = time.perf_counter()
        images = self.train_images.stack(self.cfg.image_size).float() / 255
        probs = model_masks(self.model, images, self.train_images.labels, self.cfg.prior_partners,
                            self.cfg.batch_size, self.device, seed=self.cfg.seed + self.pseudo.refreshes)
        self.pseudo.refresh(probs, self._guide.float() / 255)
        self.model.train()
        return {"pseudo_refresh": self.pseudo.refreshes, "pseudo_foreground": self.pseudo.foreground_fraction,
                "pseudo_seconds": time.perf_counter() - t0}

    def phase(self, step: int) -> str:
        return "pretrain" if step < self.cfg.pretrain_steps else "weak"

    def epoch_of(self, step: int) -> int:
        return (step - self.cfg.pretrain_steps) // self.steps_per_epoch

    def _pretrain_indices(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.cfg.seed, 1, step])
        return rng.integers(0, len(self.images), self.cfg.batch_size).tolist()

    def _weak_indices(self, step: int) -> list[int]:
        k = (step - self.cfg.pretrain_steps) % self.steps_per_epoch
        n = len(self.view)
        return [(k * self.cfg.batch_size + i) % n for i in range(self.cfg.batch_size)]

    def _loader(self, dataset, index_fn, start: int, stop: int):
        return step_loader(dataset, index_fn, start, stop, self.rank, self.world, self.cfg.num_workers,
                           pin_memory=self.device.type == "cuda")

    # ------------------------------------------------------------------------------------------
    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _compute(self, step: int, batch) -> tuple[torch.Tensor, dict]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            if self.phase(step) == "pretrain":
                images = self._to_device(batch["image"])
                gen = torch.Generator().manual_seed(int(np.random.default_rng([self.cfg.seed, 2, step]).integers(2**62)))
                return pretrain_loss(self.forward, images, gen, tps=True)
            images = batch["images"].to(self.device, non_blocking=True)
            out = self.forward(images, tps=True, masks=self.cfg.loss.needs_masks)
            pseudo = None
            if self.pseudo is not None:
                pseudo = self.pseudo.targets(batch["indices"])
                if "flips" in batch:  # pair lists mirror some images: mirror their targets too
                    pseudo = torch.where(batch["flips"].view(*batch["flips"].shape, 1, 1, 1), pseudo.flip(-1), pseudo)
                pseudo = pseudo.to(self.device, non_blocking=True)
            return self.criterion(out, images, pseudo)

    def _check_finite(self, step: int, terms: dict, total: torch.Tensor) -> None:
        for name, value in {**terms, "total": total}.items():
            if not torch.isfinite(value.detach()).all():
                raise NonFiniteLossError(
                    f"step {step} ({self.phase(step)}): loss term '{name}' is not finite "
                    f"({value.detach().float().mean().item()}). Lower the learning rate (--lr) or that term's lambda; "
                    f"the last good checkpoint is {self.out / 'last.pt'}")

    def _set_phase_modes(self, phase: str) -> None:
        """Pre-training regresses G on frozen features (or adapts the encoder's last stage,
        ``pretrain_backbone_mode="last_stage"``); the weak phase uses the configured backbone mode."""
        self.model.encoder.set_mode(self.cfg.pretrain_backbone_mode if phase == "pretrain" else self.cfg.backbone_mode)
        self.model.train()

    def train_step(self, step: int, batch) -> dict:
        total, terms = self._compute(step, batch)
        self._check_finite(step, terms, total)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.pretrain_grad_clip if self.phase(step) == "pretrain" else self.cfg.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else torch.tensor(0.0)
        if not torch.isfinite(norm):
            raise NonFiniteLossError(f"step {step} ({self.phase(step)}): the gradient norm is {norm.item()}; "
                                     "lower the learning rate or a lambda")
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": total.item(), **{k: v.detach().float().mean().item() for k, v in terms.items()},
                "grad_norm": float(norm)}

    # ------------------------------------------------------------------------------------------
    def validate(self) -> dict:
        """The model's scores on the validation pairs (:meth:`macos_lite.validation.Validation.scores`)."""
        return self.validation.scores(self.model)

    def state_dict(self) -> dict:
        return model_checkpoint(self.model, optimizer=self.optimizer.state_dict(),
                                scheduler=self.scheduler.state_dict(), rng=rng_state(), step=self.step,
                                best=self.best, history=self.history, config=self.cfg.to_dict(),
                                stopped_early=self.stopped_early,
                                pseudo_masks=self.pseudo.state_dict() if self.pseudo is not None else None)

    def save(self, name: str = "last.pt") -> Path | None:
        """Write checkpoint ``name`` of the run folder (main process only).

        A full disk raises :class:`~macos_lite.cli_common.NoSpaceError` naming the file, the step of the
        intact ``last.pt`` and ``--resume``.
        """
        if not self.is_main:
            return None
        try:
            path = save_checkpoint(self.out / name, self.state_dict())
        except NoSpaceError as exc:
            last = self.out / "last.pt"
            kept = (f"{last.name} (step {self._saved_step}) is intact: free some space and run again with "
                    f"--resume --out {self.out}") if self._saved_step is not None and last.is_file() else \
                "no checkpoint of this run was saved: free some space and run again"
            raise NoSpaceError(f"--out {self.out}: no space left on device while writing {name}; {kept}",
                               exc.filename) from None
        if name == "last.pt":
            self._saved_step = self.step
        return path

    def _resume(self) -> None:
        path = self.out / "last.pt"
        state = load_training_checkpoint(path)
        load_weights(self.model, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step, self.best, self.history = state["step"], state["best"], list(state["history"])
        self._saved_step = self.step
        self.stopped_early = bool(state.get("stopped_early", False))
        if self.pseudo is not None and state.get("pseudo_masks") is not None:
            self.pseudo.load_state_dict(state["pseudo_masks"])
        if self.is_main:  # records written after this checkpoint would come again: the log restarts from it
            write_log(self.out / "log.jsonl", self.history)

    # ------------------------------------------------------------------------------------------
    def _stop_if_asked(self) -> None:
        """At a step boundary: if a signal arrived, save last.pt and raise :class:`TrainingInterrupted`."""
        signum = self._stop.signum if self._stop is not None else None
        if signum is None:
            return
        self.save()
        name = signal.Signals(signum).name
        raise TrainingInterrupted(f"{name}: training stopped at step {self.step} and saved {self.out / 'last.pt'}; "
                                  f"continue with --resume --out {self.out}", signum, self.out)

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.is_main:
            append_log(self.out, record, self._tb)

    # ------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train from the current step to the end (or to ``max_steps``); returns a summary."""
        self._tb = None
        lock = getattr(self, "_lock", None)
        if lock is not None and not lock.held:  # fit() again after an earlier fit() released it
            lock.acquire()
        try:
            return self._fit()
        finally:
            if lock is not None:
                lock.release()

    def _fit(self) -> dict:
        cfg = self.cfg
        if self.is_main:
            start_log(self.out, cfg.to_dict(), fresh=self.step == 0)
            if self.step == 0:
                self._log(self.setup_record())
            self._tb = open_tensorboard(self.out)
        stop = self.total_steps if cfg.max_steps is None else min(self.total_steps, cfg.max_steps)
        bar = None
        if cfg.progress and self.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        self._stop = StopRequests(announce=self.is_main)
        try:
            with self._stop:
                while self.step < stop and not self.stopped_early:
                    self._run_phase(stop, bar)
                    self._stop_if_asked()
        finally:
            if bar is not None:
                bar.close()
            if self._tb is not None:
                self._tb.close()
        self.save()
        return self.summary()

    def _run_phase(self, stop: int, bar) -> None:
        cfg = self.cfg
        phase = self.phase(self.step)
        self._set_phase_modes(phase)
        if phase == "pretrain":
            end = min(stop, cfg.pretrain_steps)
            loader = self._loader(self.images, self._pretrain_indices, self.step, end)
        else:
            epoch = self.epoch_of(self.step)
            self.view.set_epoch(epoch)
            end = min(stop, cfg.pretrain_steps + (epoch + 1) * self.steps_per_epoch)
            loader = self._loader(self.view, self._weak_indices, self.step, end)
        t0, seen = time.perf_counter(), 0
        for batch in unwrapped_batches(loader):  # a worker's error reads as the main process's
            stats = self.train_step(self.step, batch)
            self.step += 1
            seen += cfg.batch_size
            if bar is not None:
                bar.update(1)
                bar.set_postfix(phase=phase, loss=f"{stats['loss']:.4f}")
            if self.step % cfg.log_every == 0 or self.step == end:
                rate = seen / max(1e-9, time.perf_counter() - t0)
                self._log({"step": self.step, "phase": phase, "epoch": max(0, self.epoch_of(self.step - 1)),
                           "lr": self.scheduler.get_last_lr()[0], "tuples_per_s": rate, **stats})
                t0, seen = time.perf_counter(), 0
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
            if self.step < end:  # the last step of a phase stops after the phase's own work (validation)
                self._stop_if_asked()
        if phase == "weak" and (self.step - cfg.pretrain_steps) % self.steps_per_epoch == 0:
            self._end_epoch()
        elif phase == "pretrain" and self.step == cfg.pretrain_steps:
            metrics = self._validate_main()
            record = {"step": self.step, "phase": "pretrain_done", "epoch": -1, **metrics}
            self._log(record)
            self.save()
            self._keep_if_best(record)

    def setup_record(self) -> dict:
        """The first ``log.jsonl`` record: which pairs validate, which images pre-train and train."""
        train = self.view.images if hasattr(self.view, "images") else getattr(self.view, "image_paths", [])
        return {"step": 0, "phase": "setup", "train_images": len(train), "pretrain_pool": self.pool_sources,
                "pretrain_pool_images": len(self.images), "val_source": self.val_source,
                "held_out_images": sorted(self.held_out),
                "val_pairs": pair_names(self.val_pairs) if self.val_pairs is not None else []}

    def _validate_main(self) -> dict:
        metrics = self.validate() if self.is_main else {}
        if self.world > 1:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        return metrics

    def _end_epoch(self) -> None:
        epoch = self.epoch_of(self.step - 1)
        every = self.cfg.prior_refresh
        if self.pseudo is not None and every and (epoch + 1) % every == 0 and epoch + 1 < self.cfg.epochs:
            self._log({"step": self.step, "phase": "pseudo_refresh", "epoch": epoch, **self._refresh_pseudo_masks()})
        metrics = self._validate_main()
        score = metrics.get(self.validation.key, math.nan)
        record = {"step": self.step, "phase": "epoch_end", "epoch": epoch, **metrics}
        self._log(record)
        self.save()
        self._keep_if_best(record)
        drop = self.cfg.early_stop_drop
        if drop is not None and not math.isnan(score) and score < self.best - drop:
            self.stopped_early = True  # the official script's rule: stop when val PCK falls below best - drop
            self._log({"step": self.step, "phase": "early_stop", "epoch": epoch, "best": self.best})
            self.save()

    def _keep_if_best(self, record: dict) -> None:
        score = record.get(self.validation.key, math.nan)
        if not math.isnan(score) and score > self.best:
            self.best = score
            record["best"] = True
            self.save("best.pt")

    def summary(self) -> dict:
        losses = [r for r in self.history if r.get("phase") == "weak"]
        return {"out": str(self.out), "steps": self.step,
                f"best_{self.validation.key}": self.best if math.isfinite(self.best) else None,
                **({"val_pck_ransac@0.1": self.validation.ransac_metrics["val_pck_ransac@0.1"]}
                   if self.validation.ransac_metrics else {}),
                "first_weak_loss": losses[0]["loss"] if losses else None,
                "last_weak_loss": losses[-1]["loss"] if losses else None,
                "stopped_early": self.stopped_early,
                **({"prior_seconds": round(self.prior_seconds, 1),
                    "pseudo_foreground": self.pseudo.foreground_fraction} if self.pseudo is not None else {})}


def train(config: TrainConfig | None = None, **overrides) -> dict:
    """Build a :class:`Trainer` and fit it; returns its summary."""
    return Trainer(config, **overrides).fit()
