"""Fine-tune a model on a user's own corrected labels (the human-in-the-loop step).

One entry point, :func:`fine_tune`, for the napari panel and for scripts: it snapshots the
images and labels it is given (later edits do not change the run), holds one image out for
validation, scores the starting model on it, trains with :func:`.train.train` from the
starting checkpoint, tunes the thresholds, writes the checkpoint with its provenance and
makes its int8 CPU model.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Fine-tuning defaults. benchmarks/bench_finetune.py (README) found 2e-4 on the whole
#: network the safest of the settings it compared; higher rates and longer runs overfit a
#: handful of images.
FINETUNE_DEFAULTS = {"minutes": 5.0, "lr": 2e-4, "epoch_images": 64, "batch_size": 4,
                     "freeze_encoder": False}


class FineTuneError(ValueError):
    """Nothing usable to train on; the message says what is missing."""


@dataclass
class TrainingPair:
    """One image and its corrected labels, as given by the user."""

    name: str
    image: np.ndarray
    labels: np.ndarray


def check_pairs(pairs: list[TrainingPair]) -> list[TrainingPair]:
    """Copies of the usable pairs; a one-line :class:`FineTuneError` when none is.

    A pair is usable when its labels are 2D integers with at least one object and match the
    image's (Y, X) shape.
    """
    good, problems = [], []
    for p in pairs:
        image, labels = np.asarray(p.image), np.asarray(p.labels)
        if labels.ndim != 2 or labels.dtype.kind not in "uib":
            problems.append(f"{p.name}: labels must be one 2D integer plane")
        elif image.shape[:2] != labels.shape:
            problems.append(f"{p.name}: image {image.shape[:2]} and labels {labels.shape} "
                            "differ in shape")
        elif not labels.any():
            problems.append(f"{p.name}: the labels are empty")
        else:
            good.append(TrainingPair(p.name, image.copy(), labels.astype(np.int32)))
    if not good:
        raise FineTuneError("nothing to train on: " + ("; ".join(problems[:3]) if problems
                                                       else "no images with labels"))
    return good


def free_path(path: str | Path) -> Path:
    """``path``, or ``<stem>-2<suffix>``, ``-3`` ... whichever does not exist yet."""
    path = Path(path)
    k = 2
    out = path
    while out.exists() or out.with_name(out.stem + ".int8.onnx").exists():
        out = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return out


def _write_snapshot(pairs: list[TrainingPair], folder: Path) -> list[tuple[Path, Path]]:
    import tifffile

    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    out = []
    for i, p in enumerate(pairs):
        stem = f"{i:03d}"
        ip, lp = folder / "images" / f"{stem}.tif", folder / "labels" / f"{stem}.tif"
        tifffile.imwrite(ip, p.image)
        tifffile.imwrite(lp, p.labels)
        out.append((ip, lp))
    return out


def fine_tune(
    base: str | Path,
    pairs: list[TrainingPair],
    out: str | Path,
    *,
    minutes: float | None = FINETUNE_DEFAULTS["minutes"],
    epochs: int | None = None,
    lr: float = FINETUNE_DEFAULTS["lr"],
    hold_out: bool | None = None,
    tune_thresholds: bool = True,
    make_int8: bool = True,
    int8_in_child: bool = False,
    freeze_encoder: bool = FINETUNE_DEFAULTS["freeze_encoder"],
    device: str = "auto",
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Fine-tune ``base`` on corrected labels and write a new checkpoint.

    Parameters
    ----------
    base : str or Path
        Starting checkpoint, or ``"default"``.
    pairs : list of TrainingPair
        Images with corrected labels (copied at once: later edits do not change the run).
    out : str or Path
        Where the checkpoint goes; an existing file is never replaced (a free name next to
        it is used, see :func:`free_path`).
    minutes, epochs : float, int
        Budget (the first reached ends the run).
    lr : float
        Peak learning rate.
    hold_out : bool, optional
        Keep the last image out of training to score before/after and pick the best epoch;
        default: when there are 3 images or more.
    tune_thresholds : bool
        Tune the watershed thresholds on the training images (the held-out image stays
        unseen, so that its before/after scores are honest).
    make_int8 : bool
        Make the int8 CPU model from the user's images.
    int8_in_child : bool
        Make it in a child process (:func:`.optimize.make_int8_in_child`), so that a GUI
        running this in a thread does not pause while the model is exported and quantized.
    freeze_encoder : bool
        Train the decoder only.
    device : str
    on_epoch, on_step, cancel
        See :func:`.train.train`; cancelling keeps the best model so far.
    log : callable

    Returns
    -------
    dict
        ``checkpoint``, ``before`` and ``after`` (held-out mAP, None without hold-out),
        ``thresholds``, ``interrupted``, ``epochs``, ``images``.
    """
    from .checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
    from .metrics import image_scores
    from .optimize import make_int8, make_int8_in_child
    from .pipeline import segment_image
    from .train import TrainConfig, train
    from .validation import finalize_thresholds

    pairs = check_pairs(pairs)
    if hold_out is None:
        hold_out = len(pairs) >= 3
    if hold_out and len(pairs) < 2:
        raise FineTuneError("holding one image out needs at least 2 images with labels")
    train_set, val_set = (pairs[:-1], pairs[-1:]) if hold_out else (pairs, [])
    out = free_path(out)
    base_info = read_checkpoint_info(base)

    def held_out_score(model_path) -> float | None:
        if not val_set:
            return None
        from .inference import Predictor

        pred = Predictor(model_path, "cpu" if device == "auto" else device, precision="fp32")
        return float(np.mean([image_scores(p.labels, segment_image(pred, p.image)).mean()
                              for p in val_set]))

    before = held_out_score(base)
    log(f"held-out score of the starting model: {before}")
    config = TrainConfig(
        epochs=epochs, time_budget_min=minutes, lr=lr, device=device,
        batch_size=FINETUNE_DEFAULTS["batch_size"],
        epoch_images=FINETUNE_DEFAULTS["epoch_images"], weighted_loss=True,
        freeze_encoder=freeze_encoder,
        # Nothing resumes a panel's run; writing weights and optimizer every epoch would
        # only cost time (and hold Python's lock while it writes).
        save_resume_state=False,
    )
    with tempfile.TemporaryDirectory(prefix="unetseg-finetune-") as tmp:
        tmp = Path(tmp)
        files = _write_snapshot(train_set + val_set, tmp)
        train_files, val_files = files[: len(train_set)], files[len(train_set):]
        work = tmp / "model.pt"
        summary = train(config, train_files, val_files, work, init=base, log=log,
                        show_progress=False, on_epoch=on_epoch, on_step=on_step,
                        cancel=cancel)
        if not work.exists():
            raise FineTuneError("training stopped before the first epoch ended; nothing "
                                "was written")
        if tune_thresholds:
            # On the training images: the held-out score stays an honest before/after.
            finalize_thresholds(work, train_files, device)
        after = held_out_score(work)
        model, info = load_checkpoint(work)
        prov = dict(info["provenance"])
        prov["training"] = dict(prov["training"], init=str(base))
        prov.update(
            base_model=str(base),
            base_model_date=base_info.get("provenance", {}).get("date"),
            images_used=[p.name for p in train_set],
            held_out=[p.name for p in val_set],
            held_out_mAP_before=before,
            held_out_mAP_after=after,
            thresholds_tuned_on="training images" if tune_thresholds else None,
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        save_checkpoint(model, out, provenance=prov, thresholds=model.thresholds)
    int8 = None
    if make_int8:
        write_int8 = make_int8_in_child if int8_in_child else make_int8
        int8, _ = write_int8(out, [p.image for p in pairs], n=min(32, len(pairs)))
    return {
        "checkpoint": str(out),
        "int8": None if int8 is None else str(int8),
        "before": before,
        "after": after,
        "thresholds": dict(model.thresholds),
        "interrupted": summary["interrupted"],
        "epochs": summary["epochs"],
        "images": [p.name for p in train_set],
        "held_out": [p.name for p in val_set],
    }


__all__ = ["FINETUNE_DEFAULTS", "FineTuneError", "TrainingPair", "check_pairs", "fine_tune",
           "free_path"]
