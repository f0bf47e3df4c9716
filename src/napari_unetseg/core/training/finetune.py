"""Fine-tune a model on a user's own corrected labels (the human-in-the-loop step).

One entry point, :func:`fine_tune`, for the napari panel and for scripts: it snapshots the
images and labels it is given (later edits do not change the run), holds one image out for
validation, scores the starting model on it, trains with :func:`.train.train` from the
starting checkpoint, scores the new model on the held-out image, then trains on every image
(the held-out one too) for the rest of the budget, tunes the thresholds, writes the
checkpoint with its provenance and makes its int8 CPU model.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np


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

    A pair is usable when its labels are one 2D plane of non-negative integer ids with at
    least one object, of the image's (Y, X) shape. Ids are renumbered 1..N (distinct ids
    stay distinct whatever their values).
    """
    from skimage.segmentation import relabel_sequential

    good, problems = [], []
    for p in pairs:
        image, labels = np.asarray(p.image), np.asarray(p.labels)
        if labels.ndim != 2 or labels.dtype.kind not in "uib":
            problems.append(f"{p.name}: labels must be one 2D integer plane")
        elif image.shape[:2] != labels.shape:
            problems.append(f"{p.name}: image {image.shape[:2]} and labels {labels.shape} "
                            "differ in shape")
        elif labels.dtype.kind == "i" and labels.min() < 0:
            problems.append(f"{p.name}: the labels have negative ids")
        elif not labels.any():
            problems.append(f"{p.name}: the labels are empty")
        else:
            ids = relabel_sequential(labels.astype(np.uint64, copy=False))[0]
            good.append(TrainingPair(p.name, image.copy(), ids.astype(np.int32)))
    if not good:
        raise FineTuneError("nothing to train on: " + ("; ".join(problems[:3]) if problems
                                                       else "no images with labels"))
    return good


def read_pairs(files: list[tuple[Path, Path]]) -> list[TrainingPair]:
    """Training pairs from (image file, label file) pairs, read now (a snapshot)."""
    from ..io.images import read_image, read_labels

    return [TrainingPair(Path(i).name, read_image(i), read_labels(lp)) for i, lp in files]


def held_out_count(n_pairs: int, hold_out: bool | int | None) -> int:
    """How many of ``n_pairs`` images are held out to score before/after.

    ``None`` (the default): one image from 3 images on (with fewer, every image is needed
    to train); ``True``: one; an integer: that many. At least one image always trains.
    """
    if hold_out is None:
        k = 1 if n_pairs >= 3 else 0
    else:
        k = int(hold_out)
    if k < 0 or (k and k >= n_pairs):
        raise FineTuneError(f"holding {k} image(s) out needs at least {k + 1} images with "
                            f"labels; there are {n_pairs}")
    return k


def held_out_if_possible(n_pairs: int, wanted: bool) -> int:
    """One image held out when ``wanted`` and at least two images remain to train on one.

    >>> [held_out_if_possible(n, wanted) for n, wanted in ((1, True), (2, True), (5, False))]
    [0, 1, 0]
    """
    return 1 if wanted and n_pairs >= 2 else 0


def should_use(before: float | None, after: float | None) -> bool:
    """Whether a fine-tuned model replaces the one it started from.

    Not when it scores lower on the user's held-out images: it stays on disk, and the
    starting model stays in use. Without a held-out score there is nothing against it.
    """
    return before is None or after is None or after >= before


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


@dataclass(frozen=True)
class FineTuneSettings:
    """How :func:`fine_tune` trains; every default is the one benchmarks/bench_finetune.py
    (README) found safest: 2e-4 on the whole network, since higher rates and longer runs
    overfit a handful of images; the held-out image is trained on for the second half of
    the budget, once it has judged the first half (every corrected image teaches).

    Attributes
    ----------
    minutes, epochs : float, int
        Budget (the first reached ends the run).
    lr : float
        Peak learning rate.
    hold_out : bool or int, optional
        How many images (the last ones) are kept out of training to score before/after and
        pick the best epoch; see :func:`held_out_count`.
    tune_thresholds : bool
        Tune the watershed thresholds on the training images (the held-out images stay
        unseen, so that their before/after scores are honest).
    make_int8, int8_in_child : bool
        Make the int8 CPU model from the user's images; in a child process
        (:func:`.quantize.make_int8_in_child`), so that a GUI running this in a thread
        does not pause while the model is exported and quantized.
    freeze_encoder : bool
        Train the decoder only.
    batch_size, epoch_images, seed : int
        Crops per step and per epoch; the random seed of the crops and the weights.
    device : str
    overwrite : bool
        Replace ``out`` (and its int8 model) if they exist.
    train_options : dict, optional
        Further :class:`.TrainConfig` fields (benchmarks compare recipes with them).
    fold_in : float
        With held-out images: this fraction of the budget continues training from the best
        epoch on every image, held-out ones included (so that every corrected image
        teaches); the before/after scores are those measured before it, on unseen images.
        0 keeps the held-out images out of training altogether.
    trust_code : bool
        Let ``base`` build its encoder with a function the file names (see
        :func:`.checkpoint.load_checkpoint`).
    """

    minutes: float | None = 5.0
    epochs: int | None = None
    lr: float = 2e-4
    hold_out: bool | int | None = None
    tune_thresholds: bool = True
    make_int8: bool = True
    int8_in_child: bool = False
    freeze_encoder: bool = False
    batch_size: int = 4
    epoch_images: int = 64
    seed: int = 0
    device: str = "auto"
    overwrite: bool = False
    train_options: dict[str, Any] | None = None
    fold_in: float = 0.5
    trust_code: bool = False

    def train_config(self, part: float, lr: float, epochs: int | None = None):
        """The :class:`.TrainConfig` of a phase given ``part`` of the time budget and
        ``epochs`` of the epoch budget."""
        from .train_config import TrainConfig

        return TrainConfig(
            epochs=epochs, time_budget_min=None if self.minutes is None else self.minutes * part,
            lr=lr, device=self.device, seed=self.seed, batch_size=self.batch_size,
            epoch_images=self.epoch_images, weighted_loss=True,
            freeze_encoder=self.freeze_encoder,
            # Nothing resumes a fine-tuning run; writing weights and optimizer every epoch
            # would only cost time (and hold Python's lock while it writes).
            save_resume_state=False, **(self.train_options or {}))


#: The defaults by name (the command line's help and fallbacks).
FINETUNE_DEFAULTS = {k: getattr(FineTuneSettings(), k) for k in
                     ("minutes", "lr", "epoch_images", "batch_size", "freeze_encoder",
                      "fold_in")}


def fine_tune(base: str | Path, pairs: list[TrainingPair], out: str | Path,
              settings: FineTuneSettings | None = None, *,
              on_epoch: Callable[[dict], None] | None = None,
              on_step: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None,
              log: Callable[[str], None] = lambda s: None, **options) -> dict[str, Any]:
    """Fine-tune ``base`` on corrected labels and write a new checkpoint.

    The one fine-tuning recipe: the napari panel, ``unetseg train --init`` and scripts all
    call this, so the same images, settings and seed give the same model.

    Parameters
    ----------
    base : str or Path
        Starting checkpoint, or ``"default"``.
    pairs : list of TrainingPair
        Images with corrected labels (copied at once: later edits do not change the run).
    out : str or Path
        Where the checkpoint goes. An existing file is never replaced (a free name next to
        it is used, see :func:`free_path`) unless ``overwrite``.
    settings : FineTuneSettings, optional
        ``options`` (its field names, e.g. ``minutes=2, hold_out=1``) override it.
    on_epoch, on_step, cancel
        See :func:`.train.train`; cancelling keeps the best model so far (cancelling before
        the first step writes nothing and raises :class:`.TrainingError`).
    log : callable
        Receives progress lines; those of the steps after training start with ``"now: "``.

    Returns
    -------
    dict
        ``checkpoint``, ``int8``, ``before`` and ``after`` (held-out mAP, None without
        hold-out), ``use`` (see :func:`should_use`), ``thresholds``, ``interrupted``,
        ``epochs``, ``steps``, ``images``, ``held_out``, ``trained_on_held_out`` (the
        held-out images taught the second half; ``after`` was measured before it).
    """
    s = replace(settings or FineTuneSettings(), **options)
    pairs = check_pairs(pairs)
    k = held_out_count(len(pairs), s.hold_out)
    train_set, val_set = pairs[: len(pairs) - k], pairs[len(pairs) - k:]
    out = Path(out) if s.overwrite else free_path(out)
    if val_set:
        log("now: scoring the starting model on the held-out image…")
    before = held_out_score(base, val_set, s.device, s.trust_code)
    log(f"held-out score of the starting model: {before}")
    with tempfile.TemporaryDirectory(prefix="unetseg-finetune-") as tmp:
        run = _Phases(s, base, train_set, val_set, Path(tmp), log,
                      dict(on_epoch=on_epoch, on_step=on_step, cancel=cancel))
        work, summary, after = run.train()
        model = _write_result(work, out, base, train_set, val_set, before, after,
                              s.tune_thresholds, summary, folded=run.folded,
                              trust_code=s.trust_code)
    int8 = _write_int8(s, out, pairs, log) if s.make_int8 else None
    return {"checkpoint": str(out), "int8": None if int8 is None else str(int8),
            "before": before, "after": after, "use": should_use(before, after),
            "thresholds": dict(model.thresholds), "interrupted": summary["interrupted"],
            "epochs": summary["epochs"], "steps": summary["steps"],
            "images": [p.name for p in train_set], "held_out": [p.name for p in val_set],
            "trained_on_held_out": run.folded}


@dataclass
class _Phases:
    """Train on the training images, score the held-out ones, then (fold-in) train on all."""

    s: FineTuneSettings
    base: object
    train_set: list[TrainingPair]
    val_set: list[TrainingPair]
    tmp: Path
    log: Callable[[str], None]
    callbacks: dict

    @property
    def share(self) -> float:
        """The part of the budget that trains on every image (0: none)."""
        share = self.s.fold_in if self.val_set and 0 < self.s.fold_in < 1 else 0.0
        # An epoch budget too small to split (one epoch) has no second half.
        return share if self.epochs(share)[1] != 0 else 0.0

    def epochs(self, share: float) -> tuple[int | None, int | None]:
        """The epoch budget of each half (None: time alone)."""
        total = self.s.epochs
        if total is None:
            return None, None
        first = total if not share else max(1, round(total * (1 - share)))
        return first, total - first

    #: Whether the held-out images were trained on (set by :meth:`train`).
    folded: bool = False

    def train(self) -> tuple[Path, dict, float | None]:
        s, log = self.s, self.log
        work, summary, train_files = _train_on_snapshot(
            s.train_config(1 - self.share, s.lr, self.epochs(self.share)[0]), self.base,
            self.train_set, self.val_set, self.tmp / "main", log=log, trust_code=s.trust_code,
            **self.callbacks)
        if s.tune_thresholds:
            log("now: tuning the thresholds on your images…")
            # On the training images: the held-out score stays an honest before/after.
            self._tune(work, train_files)
        if self.val_set:
            log("now: scoring the new model on the held-out image…")
        after = held_out_score(work, self.val_set, s.device, s.trust_code)
        if self.share and not summary["interrupted"]:
            work, summary = self._fold_in(work, summary)
        return work, summary, after

    def _fold_in(self, work: Path, summary: dict) -> tuple[Path, dict]:
        """Continue from ``work`` on every image, the held-out ones included."""
        from .train_config import TrainingError

        s, on_epoch, cancel = self.s, self.callbacks["on_epoch"], self.callbacks["cancel"]
        first = summary["epochs"]
        self.log("now: teaching it the held-out image too…")
        try:
            folded, more, all_files = _train_on_snapshot(
                s.train_config(self.share, s.lr / 2, self.epochs(self.share)[1]), work,
                self.train_set + self.val_set, [], self.tmp / "all", log=self.log,
                on_step=self.callbacks["on_step"],
                # One epoch count across both halves (the panel's plot and progress).
                on_epoch=None if on_epoch is None else
                lambda line: on_epoch(dict(line, epoch=first + line["epoch"])),
                cancel=cancel, trust_code=s.trust_code)
        except TrainingError:
            if cancel is None or not cancel():
                raise
            # Cancelled before its first step: the first half's model is the result.
            return work, dict(summary, interrupted=True)
        self.folded = True
        if s.tune_thresholds:
            self._tune(folded, all_files)
        return folded, dict(summary, epochs=first + more["epochs"],
                            steps=summary["steps"] + more["steps"],
                            interrupted=more["interrupted"])

    def _tune(self, work: Path, files) -> None:
        from .validation import finalize_thresholds

        finalize_thresholds(work, files, self.s.device, trust_code=self.s.trust_code)


def _write_int8(s: FineTuneSettings, out: Path, pairs: list[TrainingPair], log):
    from ..inference.quantize import make_int8, make_int8_in_child

    log("now: making the int8 CPU model…")
    int8, _ = (make_int8_in_child if s.int8_in_child else make_int8)(
        out, [p.image for p in pairs], n=min(32, len(pairs)), trust_code=s.trust_code)
    return int8


def held_out_score(model, val_set: list[TrainingPair], device: str = "auto",
                   trust_code: bool = False) -> float | None:
    """Mean mAP_50_95 of ``model`` on held-out pairs, segmented as in use (None without)."""
    if not val_set:
        return None
    from ..inference.predictor import Predictor
    from ..instances.metrics import image_scores
    from ..run.segmentation import segment

    pred = Predictor(model, "cpu" if device == "auto" else device, precision="fp32",
                     trust_code=trust_code)
    return float(np.mean([image_scores(p.labels, segment(pred, p.image).labels).mean()
                          for p in val_set]))


def _train_on_snapshot(config, base, train_set, val_set, tmp: Path, **callbacks):
    """Train from ``base`` on files written under ``tmp``; (checkpoint, summary, files)."""
    from .train import train

    tmp.mkdir(parents=True)
    files = _write_snapshot(train_set + val_set, tmp)
    train_files, val_files = files[: len(train_set)], files[len(train_set):]
    work = tmp / "model.pt"
    summary = train(config, train_files, val_files, work, init=base, show_progress=False,
                    **callbacks)
    return work, summary, train_files


def _write_result(work: Path, out: Path, base, train_set, val_set, before, after,
                  tuned: bool, summary: dict, folded: bool = False,
                  trust_code: bool = False):
    """Write the trained model to ``out`` with its provenance; returns the model."""
    from ..network.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint

    base_info = read_checkpoint_info(base)
    model, info = load_checkpoint(work, trust_code=trust_code)
    prov = dict(info["provenance"])
    base_name = "default" if str(base) == "default" else str(Path(base).resolve())
    prov["training"] = dict(prov["training"], init=base_name)
    # One score, the one the panel shows: the held-out images segmented as in use.
    prov.pop("validation_during_training", None)
    prov.pop("validation_before_threshold_tuning", None)
    prov.update(
        base_model=base_name,
        base_model_date=base_info.get("provenance", {}).get("date"),
        images_used=[p.name for p in train_set + (val_set if folded else [])],
        held_out_then_trained_on=bool(folded),
        held_out=[p.name for p in val_set],
        held_out_mAP_before=before,
        held_out_mAP_after=after,
        validation={"mAP_50_95": after} if after is not None else None,
        validation_images=len(val_set),
        training_images=len(train_set) + (len(val_set) if folded else 0),
        training_data="your corrected images",
        steps=summary["steps"],
        thresholds_tuned_on=("all your images" if folded else "training images") if tuned
        else None,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    save_checkpoint(model, out, provenance=prov, thresholds=model.thresholds)
    return model


__all__ = ["FINETUNE_DEFAULTS", "FineTuneError", "FineTuneSettings", "TrainingPair",
           "check_pairs", "fine_tune", "free_path", "held_out_count", "held_out_if_possible",
           "held_out_score", "read_pairs", "should_use"]
