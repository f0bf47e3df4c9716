"""Training a Dynamic U-Net on instance labels: the loop, its state, resume and averaging.

Scoring on validation images and threshold tuning live in :mod:`.validation`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base.styles import style_balanced_weights
from ..inference.diameter import median_diameter
from .data import CropSampler, load_pair, load_samples
from .loss import segmentation_loss
from .train_config import TrainConfig, TrainingError
from .validation import predict_maps, score_maps


def _lr_factor(progress: float) -> float:
    """Linear warm-up over the first 3 %, then cosine decay to 2 % of the peak."""
    if progress < 0.03:
        return max(progress / 0.03, 0.05)
    p = min((progress - 0.03) / 0.97, 1.0)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p))


class _Cancelled(Exception):
    """The caller's cancel() said stop."""


def _read_training_state(path: Path, model) -> dict:
    """The ``.resume.pt`` of a run, loaded into ``model``; one-line errors when foreign."""
    import torch

    from ..network.checkpoint import CheckpointError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        for key in ("optimizer", "epoch", "step", "elapsed", "best"):
            state[key]
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a training state written by unetseg train ({msg[:120]}); "
            "remove it to fine-tune the checkpoint's weights instead") from None
    return state


def train(
    config: TrainConfig,
    train_pairs: list[tuple[Path, Path]],
    val_pairs: list[tuple[Path, Path]],
    out: str | Path,
    *,
    resume: str | Path | None = None,
    init: str | Path | None = None,
    log: Callable[[str], None] = print,
    show_progress: bool = True,
    trust_code: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train a model and keep the best checkpoint (by validation mAP) at ``out``.

    Parameters
    ----------
    config : TrainConfig
    train_pairs, val_pairs : list of (image path, label path)
        Validation may be empty; then the last epoch is kept.
    out : str or Path
        Checkpoint path. Training state for ``resume`` goes to ``<out>.resume.pt``.
    resume : str or Path, optional
        A checkpoint written by an earlier run; training continues from its resume state
        when present (optimizer, schedule, epoch), otherwise fine-tunes its weights. The
        training options stored in it (border width, loss, sampling) replace ``config``'s.
    init : str or Path, optional
        A checkpoint (or ``"default"``) to fine-tune: its architecture, normalization and
        weights are the starting point; the schedule starts afresh and ``config``'s training
        options (border width, loss, sampling, learning rate) apply.
    log : callable
        Receives one line per epoch.
    show_progress : bool
        Show a tqdm progress bar.
    trust_code : bool
        Let ``resume``/``init`` build an encoder with a function the file names.
    on_epoch : callable, optional
        Receives each epoch's figures (epoch, loss, img_per_s and validation scores).
    on_step : callable, optional
        ``on_step(step in epoch, steps per epoch)`` after every step.
    cancel : callable, optional
        Checked after every step; True stops the run as an interruption does: the best
        checkpoint so far is kept and the summary says ``interrupted``.

    Returns
    -------
    dict
        Summary: epochs, best score, thresholds, timings.
    """
    from ..inference.predictor import resolve_device

    config.check()
    if resume is not None and init is not None:
        raise ValueError("give either resume (continue a run) or init (fine-tune), not both")
    import torch

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    existed = {p: p.exists() for p in (Path(out), Path(out).with_name(Path(out).name +
                                                                    ".resume.pt"))}
    model, start_state = _set_up_model(config, resume, init, trust_code, log)
    run = _prepare_run(config, model, train_pairs, val_pairs, Path(out), device, start_state,
                       log)
    interrupted = _run_epochs(run, show_progress, on_step, on_epoch, cancel, log)
    if run.step == 0:
        _remove_new_files(existed)
        raise TrainingError("training stopped before its first step; nothing was written"
                            if interrupted else "no training step was made; nothing was "
                            "written")
    averaged_scores = None if interrupted else _finish_averaging(run, log)
    return {"epochs": run.epoch, "steps": run.step,
            "seconds": round(time.perf_counter() - run.t0), "best": run.best,
            "interrupted": interrupted, "checkpoint": str(run.out), "history": run.history,
            **({"averaged": averaged_scores} if averaged_scores is not None else {})}


def _remove_new_files(existed: dict[Path, bool]) -> None:
    """Delete what a run without a step wrote: it would pass for a trained model."""
    for path, was_there in existed.items():
        if not was_there and path.exists():
            path.unlink()


def _run_epochs(run, show_progress: bool, on_step, on_epoch, cancel, log) -> bool:
    """Train and validate epoch after epoch until the budget is spent.

    Returns True when interrupted (Ctrl+C or ``cancel``); the training state and a best
    checkpoint are saved either way.
    """
    try:
        while run.progress() < 1.0:
            line = _train_epoch(run, show_progress, on_step, cancel)
            if run.val:
                line.update(_validate_epoch(run))
            else:
                run.best = {"mAP_50_95": float("nan"), "epoch": run.epoch}
                run.save_best({})
            run.history.append(line)
            run.save_state()
            if on_epoch is not None:
                on_epoch(dict(line, best=run.best.get("mAP_50_95")))
            log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in line.items()))
    except (KeyboardInterrupt, _Cancelled):
        log("interrupted: saving the training state")
        run.save_state()
        if not run.out.exists():
            run.save_best({})
        return True
    return False


def _set_up_model(config: TrainConfig, resume, init, trust_code: bool, log):
    """The model to train: fresh, resumed (with its training state) or to fine-tune.

    Resuming and fine-tuning take what defines the model from the checkpoint and update
    ``config`` to match. Returns ``(model, training state or None)``.
    """
    from ..network.checkpoint import load_checkpoint
    from ..network.model import build_model

    if resume is None and init is None:
        model = build_model(
            config.encoder, in_channels=3, targets=config.targets, upsample=config.upsample,
            encoder_kwargs=config.encoder_kwargs, pretrained=config.pretrained,
            encoder_weights=config.encoder_weights,
        )
        model.diameter = config.canonical_diameter
        return model, None
    model, info = load_checkpoint(resume if resume is not None else init,
                                  trust_code=trust_code)
    config.targets, config.canonical_diameter = model.targets, model.diameter
    if resume is not None:
        rs = Path(resume).with_name(Path(resume).name + ".resume.pt")
        # What defines the model comes from the checkpoint, not from the command line.
        previous = info.get("provenance", {}).get("training", {})
        for key in ("encoder", "encoder_kwargs", "encoder_weights", "pretrained", "upsample",
                    "border_width", "weighted_loss", "balance_styles", "scale_jitter",
                    "colour_augment"):
            if key in previous:
                setattr(config, key, previous[key])
        return model, _read_training_state(rs, model) if rs.exists() else None
    for key in ("encoder", "encoder_kwargs", "upsample"):
        setattr(config, key, info["config"][key])
    config.encoder_weights, config.pretrained = None, False
    config.init = "default" if str(init) == "default" else str(Path(init).resolve())
    log(f"fine-tuning {info['path']} ({config.encoder}, {config.targets} targets)")
    return model, None


@dataclass
class _Run:
    """Everything a training run carries from step to step."""

    config: TrainConfig
    model: Any
    forward: Any
    opt: Any
    device: Any
    sampler: CropSampler
    style_p: np.ndarray | None
    val: list
    val_diameters: list
    out: Path
    per_epoch: int
    steps_per_epoch: int
    thresholds: dict
    averaged: Any = None
    averaged_from: int | None = None
    epoch: int = 0
    step: int = 0
    t0: float = 0.0
    best: dict = field(default_factory=lambda: {"mAP_50_95": -1.0})
    history: list = field(default_factory=list)

    @property
    def state_path(self) -> Path:
        return self.out.with_name(self.out.name + ".resume.pt")

    def progress(self) -> float:
        """Fraction of the run done: the larger of steps and time used."""
        c, fr = self.config, []
        if c.epochs:
            fr.append(self.step / (c.epochs * self.steps_per_epoch))
        if c.time_budget_min:
            fr.append((time.perf_counter() - self.t0) / (c.time_budget_min * 60))
        return max(fr)

    def save_state(self) -> None:
        import torch

        if not self.config.save_resume_state:
            return
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": time.perf_counter() - self.t0,
            "best": self.best,
            "history": self.history,
        }
        if self.averaged is not None and self.averaged_from is not None:
            state.update(averaged=self.averaged.module.state_dict(),
                         averaged_count=int(self.averaged.n_averaged),
                         averaged_from=self.averaged_from)
        torch.save(state, self.state_path)

    def save_best(self, scores: dict, weights: str | None = None) -> None:
        from ..network.checkpoint import save_checkpoint

        prov = {
            "training": asdict(self.config),
            "training_images": len(self.sampler.samples),
            "validation_images": len(self.val),
            "epochs": self.epoch,
            "steps": self.step,
            "train_seconds": round(time.perf_counter() - self.t0),
            "validation": scores,
        }
        if weights:
            prov["weights"] = weights
        save_checkpoint(self.model, self.out, provenance=prov, thresholds=self.thresholds)


def _prepare_run(config: TrainConfig, model, train_pairs, val_pairs, out: Path, device,
                 start_state, log) -> _Run:
    """Load the data, set up sampler, optimizer and averaging; restore a resumed state."""
    import torch

    norm = model.normalization
    t_load = time.perf_counter()
    samples = load_samples(train_pairs, norm, config.diameter)
    val = [load_pair(ip, lp) for ip, lp in val_pairs]
    log(f"loaded {len(samples)} training and {len(val)} validation images "
        f"in {time.perf_counter() - t_load:.0f} s; device {device}")
    sampler = CropSampler(
        samples, config.crop, config.targets, config.border_width, config.weighted_loss, norm,
        canonical_diameter=config.canonical_diameter, scale_jitter=tuple(config.scale_jitter),
        colour_augment=config.colour_augment,
        seed=config.seed + (start_state["epoch"] if start_state else 0),
    )
    style_p = style_balanced_weights([s.style for s in samples]) if config.balance_styles else None
    if style_p is not None:
        shares = {st: round(float(style_p[[s.style == st for s in samples]].sum()), 3)
                  for st in sorted({s.style for s in samples})}
        log(f"sampling shares by image style: {shares}")
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if config.freeze_encoder:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                            weight_decay=config.weight_decay)
    # Whole batches only, and at least one: with fewer images than a batch (a user's few
    # corrected images) the crops are drawn with replacement, so an epoch always trains.
    steps_per_epoch = max(1, -(-(config.epoch_images or len(samples)) // config.batch_size))
    per_epoch = steps_per_epoch * config.batch_size
    run = _Run(
        config=config, model=model,
        # The compiled module shares its parameters with ``model``; validation, checkpoints
        # and the training state use ``model`` itself. Crops and batches have one fixed
        # shape, so the graph compiles once (the first step) and never again.
        forward=torch.compile(model) if config.compile else model,
        opt=opt, device=device, sampler=sampler, style_p=style_p, val=val,
        # Validation during training rescales by the true diameters (cheap, and picks the
        # best network); thresholds are tuned afterwards with estimated ones, as users get.
        val_diameters=[config.diameter or median_diameter(v[1]) for v in val],
        out=out, per_epoch=per_epoch, steps_per_epoch=steps_per_epoch,
        thresholds=dict(model.thresholds),
    )
    if config.average_last > 0:
        from torch.optim.swa_utils import AveragedModel

        # Buffers too: batch-norm statistics are averaged like the weights.
        run.averaged = AveragedModel(model, use_buffers=True)
    elapsed_before = 0.0
    if start_state is not None:
        opt.load_state_dict(start_state["optimizer"])
        run.epoch, run.step = start_state["epoch"], start_state["step"]
        # A damaged or hand-edited state must not stretch the budget (a negative elapsed
        # time would never reach it).
        elapsed_before = float(start_state["elapsed"])
        if not (elapsed_before >= 0 and np.isfinite(elapsed_before)):
            elapsed_before = 0.0
        run.best = dict(start_state["best"])
        run.history = list(start_state.get("history", []))
        if run.averaged is not None and start_state.get("averaged") is not None:
            run.averaged.module.load_state_dict(start_state["averaged"])
            run.averaged.n_averaged.fill_(start_state["averaged_count"])
            run.averaged_from = start_state["averaged_from"]
    run.t0 = time.perf_counter() - elapsed_before
    return run


def _train_epoch(run: _Run, show_progress: bool, on_step, cancel) -> dict:
    """One epoch of steps (or fewer when the budget ends); returns its figures."""
    import torch
    from tqdm.auto import tqdm

    c, model, n = run.config, run.model, len(run.sampler.samples)
    model.train()
    if c.freeze_encoder:
        model.encoder.eval()  # batch-norm statistics stay those of the base model
    order = (
        run.sampler.rng.choice(n, run.per_epoch, p=run.style_p) if run.style_p is not None
        else np.concatenate([run.sampler.rng.permutation(n)
                             for _ in range(-(-run.per_epoch // n))])[: run.per_epoch]
    )
    bar = tqdm(
        run.sampler.batches(order, c.batch_size, c.seed * 100_003 + run.epoch, c.workers),
        total=run.steps_per_epoch, desc=f"epoch {run.epoch + 1}", leave=False,
        disable=not show_progress, mininterval=5,
    )
    losses = []
    t_ep = time.perf_counter()
    for x, y, w in bar:
        if cancel is not None and cancel():
            raise _Cancelled
        x, y = x.to(run.device), y.to(run.device)
        w = w.to(run.device) if w is not None else None
        if c.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for g in run.opt.param_groups:
            g["lr"] = c.lr * _lr_factor(run.progress())
        if run.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = run.forward(x)
            loss = segmentation_loss(logits.float(), y, w, c.targets)
        else:
            loss = segmentation_loss(run.forward(x), y, w, c.targets)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.step += 1
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}",
                        best=f"{run.best['mAP_50_95']:.3f}")
        if on_step is not None:
            on_step(len(losses), run.steps_per_epoch)
        if run.progress() >= 1.0:
            break
    run.epoch += 1
    if run.averaged is not None and run.progress() >= 1.0 - c.average_last:
        run.averaged.update_parameters(model)
        run.averaged_from = run.averaged_from or run.epoch
    return {"epoch": run.epoch, "loss": float(np.mean(losses)),
            "img_per_s": len(losses) * c.batch_size / (time.perf_counter() - t_ep)}


def _score_val(run: _Run) -> dict:
    maps, scales = predict_maps(run.model, [v[0] for v in run.val], str(run.device),
                                run.val_diameters)
    return score_maps(maps, [v[1] for v in run.val], run.config.targets, run.thresholds,
                      scales)


def _validate_epoch(run: _Run) -> dict:
    """Score the epoch on the validation images; keep the checkpoint if it is the best."""
    import torch

    scores = _score_val(run)
    if scores["mAP_50_95"] > run.best["mAP_50_95"]:
        run.best = dict(scores, epoch=run.epoch)
        run.save_best(scores)
    if run.config.channels_last:
        run.model.to(memory_format=torch.channels_last)
    return scores


def _finish_averaging(run: _Run, log) -> dict | None:
    """With ``average_last``: the averaged weights replace the best epoch if they score
    better on the validation images (without any, they are kept: the option asks for them)."""
    if run.averaged_from is None:
        return None
    span = f"mean of epochs {run.averaged_from}-{run.epoch}"
    run.model.load_state_dict(run.averaged.module.state_dict())
    scores = {"epochs": [run.averaged_from, run.epoch]}
    if run.val:
        scores.update(_score_val(run))
        log(f"{span}: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items() if k != "epochs"))
    if not run.val or scores["mAP_50_95"] > run.best["mAP_50_95"]:
        run.save_best({k: v for k, v in scores.items() if k != "epochs"}, weights=span)
        run.best = dict(scores, epoch=span)
    return scores


__all__ = ["TrainConfig", "TrainingError", "train"]
