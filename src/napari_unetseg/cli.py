"""The ``unetseg`` command: info, train, evaluate and predict without a GUI."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: Largest block edge (pixels) of block-by-block segmentation: one block and its halo are
#: one tile of the network, whose memory grows with the square.
MAX_BLOCK = 16384


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def _cmd_info(args) -> int:
    from napari_unetseg.core.checkpoint import read_checkpoint_info

    info = read_checkpoint_info(args.model)
    print(json.dumps(info, indent=2, default=str))
    return 0


#: ``unetseg train`` options that define a new architecture: a fine-tuned model keeps its own.
_ARCHITECTURE_OPTIONS = ("encoder", "encoder_kwargs", "encoder_weights", "pretrained",
                         "targets", "upsample", "canonical_diameter")
#: Options of training from scratch that the fine-tuning recipe does not take, with their
#: defaults (given with --init, they are refused rather than ignored).
_SCRATCH_ONLY = {"border_width": None, "weighted_loss": False, "balance_styles": False,
                 "crop": 256, "compile": False, "average_last": 0.0, "diameter": "auto",
                 "no_colour_augment": False, "workers": 0}
#: Training from scratch when no option says otherwise (fine-tuning has its own defaults,
#: core.finetune.FINETUNE_DEFAULTS).
_SCRATCH_DEFAULTS = {"epochs": 50, "lr": 2e-3, "batch_size": 8, "encoder": "unet",
                     "targets": "mask_border", "upsample": "transposed"}


def check_output_name(path) -> None:
    """Refuse an output path the file system cannot hold, before any work starts."""
    if path is None:
        return
    for part in Path(path).parts:
        if len(part.encode()) > 255:
            raise UserError(f"{str(path)[:60]}…: a file or folder name longer than 255 bytes; "
                            "choose a shorter one")


def _check_train_args(args) -> None:
    """The checks both kinds of training share, before anything is read or built."""
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be 1 or more, got {args.epochs}")
    if args.time_budget is not None and not (0 < args.time_budget < float("inf")):
        raise UserError(f"--time-budget must be a positive number of minutes, got "
                        f"{args.time_budget}")
    for name in ("batch_size", "epoch_images", "crop"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be 1 or more, got {value}")
    if args.lr is not None and not (0 < args.lr < float("inf")):
        raise UserError(f"--lr must be a positive number, got {args.lr}")
    if args.canonical_diameter is not None and args.canonical_diameter < 0:
        raise UserError(f"--canonical-diameter must be 0 (none) or a positive number of "
                        f"pixels, got {args.canonical_diameter}")
    check_output_name(args.out)
    out = Path(args.out)
    resuming_in_place = args.resume and Path(args.resume).resolve() == out.resolve()
    if out.exists() and not resuming_in_place and not (
            args.overwrite and out.suffix.lower() in (".pt", ".pth")):
        raise UserError(f"--out {out} exists; choose a new file name"
                        + (" or add --overwrite" if out.suffix.lower() in (".pt", ".pth")
                           else ""))


def _cmd_finetune(args) -> int:
    """``train --init MODEL``: the fine-tuning recipe of the napari panel (core.finetune)."""
    from napari_unetseg.core.data import find_pairs, read_id_list
    from napari_unetseg.core.finetune import FINETUNE_DEFAULTS, TrainingPair, fine_tune
    from napari_unetseg.core.io import read_image, read_labels

    given = [f"--{k.replace('_', '-')}" for k in _ARCHITECTURE_OPTIONS
             if getattr(args, k) not in (None, False)]
    if given:
        raise UserError(f"{', '.join(given)}: a fine-tuned model keeps the architecture of "
                        f"--init {args.init}; leave these out")
    other = [f"--{k.replace('_', '-')}" for k, default in _SCRATCH_ONLY.items()
             if getattr(args, k) != default]
    if other:
        raise UserError(f"{', '.join(other)}: not an option of fine-tuning (--init runs the "
                        "napari panel's recipe); leave these out")
    if args.resume:
        raise UserError("give either --init (fine-tune) or --resume (continue a run), not both")
    from napari_unetseg.core.checkpoint import load_checkpoint

    load_checkpoint(args.init, trust_code=args.trust_code)  # a bad file: one line, first
    val_ids = read_id_list(args.val_list) if args.val_list else []
    found = find_pairs(args.images, args.labels)
    unknown = set(val_ids) - {p[0].stem for p in found}
    if unknown:
        raise UserError(f"{len(unknown)} id(s) of {args.val_list} have no image/label pair, "
                        f"e.g. {sorted(unknown)[0]}")
    # Held-out images last: fine_tune holds out the last ones.
    ordered = [p for p in found if p[0].stem not in val_ids] + \
        [p for p in found if p[0].stem in val_ids]
    pairs = [TrainingPair(ip.name, read_image(ip), read_labels(lp)) for ip, lp in ordered]
    minutes = args.time_budget
    if minutes is None and args.epochs is None:
        minutes = FINETUNE_DEFAULTS["minutes"]

    def log(line):
        print(line, file=sys.stderr, flush=True)

    result = fine_tune(
        args.init, pairs, args.out, minutes=minutes, epochs=args.epochs,
        lr=args.lr or FINETUNE_DEFAULTS["lr"],
        hold_out=len(val_ids) if args.val_list else None, tune_thresholds=not args.no_tune,
        batch_size=args.batch_size or FINETUNE_DEFAULTS["batch_size"],
        epoch_images=args.epoch_images or FINETUNE_DEFAULTS["epoch_images"],
        seed=args.seed, device=args.device, overwrite=args.overwrite,
        trust_code=args.trust_code,
        on_epoch=lambda line: log(" ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items())),
        log=log)
    print(json.dumps(result, indent=2, default=str))
    if not result["use"]:
        log(f"unetseg train: the new model scores lower on the held-out images than "
            f"{args.init} ({result['after']:.3f} < {result['before']:.3f}); keep using "
            f"{args.init} unless you check it on more of your images")
    return 130 if result["interrupted"] else 0


def _cmd_train(args) -> int:
    from napari_unetseg.core.data import find_pairs, read_id_list
    from napari_unetseg.core.diameter import parse_diameter
    from napari_unetseg.core.train import TrainConfig, train
    from napari_unetseg.core.validation import finalize_thresholds

    _check_train_args(args)
    if args.init:
        return _cmd_finetune(args)
    for key, value in _SCRATCH_DEFAULTS.items():
        if getattr(args, key) is None and not (key == "epochs" and args.time_budget):
            setattr(args, key, value)
    if args.canonical_diameter is None:
        from napari_unetseg.core.diameter import DEFAULT_CANONICAL_DIAMETER

        args.canonical_diameter = DEFAULT_CANONICAL_DIAMETER
    diameter = parse_diameter(args.diameter)
    if args.val_list and not Path(args.val_list).is_file():
        raise UserError(f"--val-list {args.val_list}: file not found")
    val_ids = read_id_list(args.val_list) if args.val_list else []
    pairs = find_pairs(args.images, args.labels)
    val_set = set(val_ids)
    unknown = val_set - {p[0].stem for p in pairs}
    if unknown:
        raise UserError(f"{len(unknown)} id(s) of {args.val_list} have no image/label pair, "
                        f"e.g. {sorted(unknown)[0]}")
    train_pairs = [p for p in pairs if p[0].stem not in val_set]
    val_pairs = [p for p in pairs if p[0].stem in val_set]
    kwargs = json.loads(args.encoder_kwargs) if args.encoder_kwargs else {}
    config = TrainConfig(
        encoder=args.encoder,
        encoder_kwargs=kwargs,
        encoder_weights=args.encoder_weights,
        pretrained=args.pretrained,
        targets=args.targets,
        upsample=args.upsample,
        **({} if args.border_width is None else {"border_width": args.border_width}),
        weighted_loss=args.weighted_loss,
        balance_styles=args.balance_styles,
        crop=args.crop,
        batch_size=args.batch_size,
        epochs=args.epochs,
        time_budget_min=args.time_budget,
        lr=args.lr,
        device=args.device,
        seed=args.seed,
        compile=args.compile,
        average_last=args.average_last,
        diameter=diameter,
        canonical_diameter=None if args.canonical_diameter == 0 else args.canonical_diameter,
        colour_augment=not args.no_colour_augment,
        workers=args.workers,
        epoch_images=args.epoch_images,
    )
    summary = train(config, train_pairs, val_pairs, args.out, resume=args.resume, init=args.init,
                    log=lambda s: print(s, file=sys.stderr, flush=True),
                    trust_code=args.trust_code)
    if val_pairs and not args.no_tune and Path(args.out).exists():
        summary["thresholds"] = finalize_thresholds(args.out, val_pairs, args.device,
                                                    trust_code=args.trust_code)
    summary.pop("history", None)
    print(json.dumps(summary, indent=2, default=str))
    return 130 if summary["interrupted"] else 0


def _cmd_evaluate(args) -> int:
    import csv

    from napari_unetseg.core.metrics import evaluate_folders

    if args.csv and Path(args.csv).exists() and not (
            args.overwrite and Path(args.csv).suffix.lower() == ".csv"):
        raise UserError(f"--csv {args.csv} exists; choose a new file name"
                        + ("" if Path(args.csv).suffix.lower() != ".csv"
                           else " or add --overwrite"))
    if args.csv:
        check_output_name(args.csv)
        folder = Path(args.csv).parent
        if not folder.is_dir():
            raise UserError(f"--csv {args.csv}: the folder {folder} does not exist")
    summary, rows = evaluate_folders(args.gt, args.pred)
    if args.csv:
        # Atomic: an interrupted write leaves no truncated file (refused later as existing).
        tmp = Path(args.csv).with_name(f".{Path(args.csv).name}.tmp")
        try:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            tmp.replace(args.csv)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write --csv {args.csv}: {exc.strerror or exc}") from None
    print(json.dumps(summary, indent=2))
    return 0


def _collect_inputs(inputs: list[str]) -> list[Path]:
    """Image files named or found in folders; label TIFFs written by unetseg are skipped."""
    from napari_unetseg.core.batch import is_zarr
    from napari_unetseg.core.io import is_label_tiff, list_images

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if is_zarr(p):  # an OME-Zarr image is a folder, and one input
            files.append(p)
        elif p.is_dir():
            found = list_images(p)
            labels = [f for f in found if is_label_tiff(f)]
            if labels:
                print(f"unetseg predict: {p}: skipping {len(labels)} label file(s) written by "
                      f"unetseg, e.g. {labels[0].name}", file=sys.stderr)
            found = [f for f in found if f not in labels]
            if not found:
                print(f"unetseg predict: {p}: no images in this folder", file=sys.stderr)
            files.extend(found)
        elif not p.exists():
            raise UserError(f"{p}: file not found")
        else:
            files.append(p)
    return files


def _check_outputs(files: list[Path], out_dir: Path) -> None:
    """Refuse output plans that would lose data: two inputs writing one file, or an output
    file that is one of the inputs."""
    from napari_unetseg.core.batch import is_zarr

    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; give a folder for the label files")
    seen: dict[str, Path] = {}
    inputs = {f.resolve() for f in files}
    for f in files:
        if is_zarr(f):
            continue  # its labels go inside it
        target = out_dir / f"{f.stem}.tif"
        if f.stem in seen:
            raise UserError(f"{seen[f.stem]} and {f} would both be written to {target}; "
                            "rename one or segment them into different --out folders")
        seen[f.stem] = f
        if target.resolve() in inputs:
            raise UserError(f"{target} is an input image and would be replaced by its labels; "
                            "choose another --out folder")


def _check_thresholds(args) -> None:
    import math

    for key in ("mask_threshold", "seed_threshold"):
        v = getattr(args, key)
        if v is not None and not (math.isfinite(v) and 0 <= v <= 1):
            raise UserError(f"--{key.replace('_', '-')} must be in [0, 1], got {v}")
    if args.min_size is not None and args.min_size < 0:
        raise UserError(f"--min-size must be 0 or more pixels, got {args.min_size}")


def _cmd_predict(args) -> int:
    from tqdm.auto import tqdm

    from napari_unetseg.core.batch import ModelSpec, PredictJob, loaded, run_batch
    from napari_unetseg.core.diameter import parse_diameter
    from napari_unetseg.core.volume import parse_voxel_size

    _check_thresholds(args)
    parse_diameter(args.diameter)
    voxel_size = parse_voxel_size(args.voxel_size)
    if args.mode == "3d" and args.tta:
        raise UserError("--tta is not available with --mode 3d (it already averages three "
                        "views)")
    if args.workers < 1:
        raise UserError(f"--workers must be 1 or more, got {args.workers}")
    if args.channel is not None and args.channel < 1:
        raise UserError(f"--channel counts from 1 (the first channel), got {args.channel}")
    if args.block is not None and not (256 <= args.block <= MAX_BLOCK and args.block % 16 == 0):
        raise UserError(f"--block must be a multiple of 16 from 256 to {MAX_BLOCK}, got "
                        f"{args.block}")
    if voxel_size is not None:
        from napari_unetseg.core.volume import check_anisotropy

        check_anisotropy(voxel_size)
    check_output_name(args.out)
    files = _collect_inputs(args.inputs)
    if not files:
        raise UserError("no input images")
    if args.block is not None:
        from napari_unetseg.core.batch import is_zarr

        other = [f for f in files if not is_zarr(f) and f.suffix.lower() not in (".tif",
                                                                                 ".tiff")]
        if other:
            raise UserError(f"--block reads TIFF and OME-Zarr images; {other[0].name} is "
                            f"neither (leave --block out to segment it whole)")
    out_dir = Path(args.out)
    _check_outputs(files, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise UserError(f"--out folder {out_dir} is not writable")
    spec = ModelSpec(str(args.model), args.device, args.precision, args.trust_code)
    # Loaded here first (and kept for this process's tasks): a bad checkpoint is one line
    # before any work is sent anywhere.
    predictor = loaded(spec)
    overrides = tuple((k, getattr(args, k)) for k in ("mask_threshold", "seed_threshold",
                                                      "min_size") if getattr(args, k) is not None)
    print(f"model {args.model} on {predictor.device} ({predictor.backend}); thresholds "
          f"{dict(predictor.thresholds, **dict(overrides))}", file=sys.stderr)
    job = PredictJob(
        model=spec, thresholds=overrides, axes=args.axes, tile=args.tile, tta=args.tta,
        diameter=args.diameter, mode=args.mode, stitch_iou=args.stitch_iou, track=args.track,
        voxel_size=voxel_size, save_maps=args.save_maps, overwrite=args.overwrite,
        block=args.block, channel=args.channel)
    bar = tqdm(total=len(files), desc="images", unit="image", disable=args.quiet)

    def report(record, done, total):
        bar.update(1)
        if record["status"] == "skipped":
            tqdm.write(f"skipped {Path(record['image']).name}: {record['message']}",
                       file=sys.stderr)
        elif record["status"] == "failed":
            tqdm.write(f"unetseg predict: {record['message']}", file=sys.stderr)

    def tile_progress(path):
        inner = None

        def progress(done, total):
            nonlocal inner
            if total > 4 and not args.quiet:
                if inner is None:
                    inner = tqdm(total=total, desc=path.name, unit="tile", leave=False)
                inner.n = done
                inner.refresh()
                if done >= total:
                    inner.close()

        return progress

    from napari_unetseg.core.batch import OutputError

    try:
        records = run_batch(job, files, out_dir, workers=args.workers, scheduler=args.scheduler,
                            progress=report, tile_progress=tile_progress)
    except OutputError as exc:
        # Disk full, permissions: nothing half-written is left (atomic writes); later
        # images would fail the same way.
        raise UserError(str(exc)) from None
    finally:
        bar.close()
    counts = {k: sum(r["status"] == k for r in records) for k in ("written", "skipped",
                                                                   "failed")}
    seconds = sum(r.get("seconds", 0.0) for r in records)
    print(f"unetseg predict: {counts['written']} written, {counts['skipped']} skipped, "
          f"{counts['failed']} failed of {len(files)} input(s) in {seconds:.1f} s; labels in "
          f"{out_dir}", file=sys.stderr)
    if counts["failed"]:
        print(f"unetseg predict: {counts['failed']} of {len(files)} input(s) failed",
              file=sys.stderr)
        return 1
    return 0


def _middle_plane(path):
    """A file's image, or the middle plane of a stack (calibration takes 2D planes)."""
    from napari_unetseg.core.inference import check_axes, planes_of
    from napari_unetseg.core.io import read_image_with_axes

    image, axes = read_image_with_axes(path)
    planes, _ = planes_of(image, check_axes(image.shape, axes))
    return planes[len(planes) // 2]


def _cmd_quantize(args) -> int:
    from napari_unetseg.core.io import list_images
    from napari_unetseg.core.optimize import make_int8

    if args.out is not None:
        out = Path(args.out)
        if out.suffix.lower() != ".onnx":
            raise UserError(f"--out {out}: an int8 model is an .onnx file; choose a name "
                            "ending in .onnx")
        if out.exists() and not args.overwrite:
            raise UserError(f"--out {out} exists; choose a new file name or add --overwrite")
    check_output_name(args.out)
    files = list_images(args.images)
    if not files:
        raise UserError(f"{args.images}: no images to calibrate on")
    out, n = make_int8(args.model, files, n=args.n, read=_middle_plane, out=args.out,
                       trust_code=args.trust_code)
    print(json.dumps({"int8_model": str(out), "calibration_images": n}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from napari_unetseg.core.diameter import DEFAULT_CANONICAL_DIAMETER
    from napari_unetseg.core.inference import DEFAULT_TILE  # light: torch loads on first use
    from napari_unetseg.core.modes import TARGET_MODES

    # No abbreviations: "--tru" must not mean --trust-code, nor "--mod" --mode.
    p = argparse.ArgumentParser(
        prog="unetseg", allow_abbrev=False,
        description="U-Net nuclei/cell segmentation: train, evaluate, predict, inspect models.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", allow_abbrev=False, help="print a checkpoint's metadata as JSON")
    s.add_argument("model", help="checkpoint file, or 'default' for the bundled model")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("train", allow_abbrev=False, help="train a model on image/label pairs")
    s.add_argument("--trust-code", action="store_true",
                   help="let a checkpoint build its encoder by calling a function it names "
                        "(only for files from people you trust)")
    s.add_argument("--images", required=True, help="folder of images")
    s.add_argument("--labels", required=True, help="folder of label images (same file stems)")
    s.add_argument("--val-list", help="file listing the image stems held out for validation")
    s.add_argument("--encoder", help="unet | timm:NAME | module:pkg.mod:fn (default unet)")
    s.add_argument("--encoder-kwargs", help='JSON, e.g. \'{"base_width": 16}\'')
    s.add_argument("--encoder-weights", help="local file with pretrained encoder weights")
    s.add_argument("--pretrained", action="store_true",
                   help="download ImageNet weights through timm (needs network)")
    s.add_argument("--targets", choices=[n for n, m in TARGET_MODES.items() if m.trainable],
                   help="what the network predicts (default mask_border)")
    s.add_argument("--upsample", choices=["nearest", "bilinear", "transposed"],
                   help="decoder upsampling (default transposed)")
    s.add_argument("--border-width", type=int,
                   help="border thickness in pixels (default 3, chosen by validation score)")
    s.add_argument("--weighted-loss", action="store_true",
                   help="U-Net paper's border-weighted loss (w0=10, sigma=5)")
    s.add_argument("--balance-styles", action="store_true",
                   help="sample color, gray and bright-background images in sqrt proportion")
    s.add_argument("--out", required=True, help="checkpoint to write (MODEL.pt)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=int)
    g.add_argument("--time-budget", type=float, metavar="MIN", help="train for MIN minutes")
    s.add_argument("--crop", type=int, default=256)
    s.add_argument("--batch-size", type=int,
                   help="crops per step (default 8; fine-tuning: 4)")
    s.add_argument("--lr", type=float,
                   help="peak learning rate (default 2e-3; fine-tuning: 2e-4)")
    s.add_argument("--device", default="auto")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--compile", action="store_true",
                   help="torch.compile the model for training (see bench_training.py)")
    s.add_argument("--average-last", type=float, default=0.0, metavar="FRACTION",
                   help="also average the epoch-end weights of the last FRACTION of the run "
                        "(e.g. 0.25); the average is kept if it scores better on validation")
    s.add_argument("--diameter", default="auto", metavar="auto|PX",
                   help="median nucleus diameter of the training images in pixels "
                        "(default auto: measured per image from its labels)")
    s.add_argument("--canonical-diameter", type=float,
                   metavar="PX", help="nucleus diameter the new model works at; images are "
                   "rescaled to it (0: train at the images' own sizes; fine-tuning keeps the "
                   f"starting model's; default {DEFAULT_CANONICAL_DIAMETER:g})")
    s.add_argument("--no-colour-augment", action="store_true",
                   help="no stain/colour/camera augmentation")
    s.add_argument("--workers", type=int, default=0,
                   help="processes preparing training batches (default 0: none)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing checkpoint at --out")
    s.add_argument("--epoch-images", type=int, metavar="N",
                   help="crops per epoch, validation after each (default: one per image; "
                        "fine-tuning: 64)")
    s.add_argument("--resume", help="continue from this checkpoint (and its .resume.pt)")
    s.add_argument("--init", metavar="MODEL",
                   help="fine-tune this checkpoint ('default': the bundled model) on your "
                        "corrected images with the napari panel's recipe (5 minutes, lr 2e-4, "
                        "one image held out from 3 on, or the --val-list images; thresholds "
                        "tuned on the training images; int8 model made); its architecture "
                        "is kept")
    s.add_argument("--no-tune", action="store_true",
                   help="keep default thresholds instead of tuning them on the validation set")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", allow_abbrev=False,
                       help="score predicted labels against ground truth (DSB metric)")
    s.add_argument("--gt", required=True, help="folder of ground-truth label images")
    s.add_argument("--pred", required=True, help="folder of predicted label images (same stems)")
    s.add_argument("--csv", help="also write per-image scores to this CSV file")
    s.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("predict", allow_abbrev=False, help="segment images into TIFF label files")
    s.add_argument("--trust-code", action="store_true",
                   help="let a checkpoint build its encoder by calling a function it names "
                        "(only for files from people you trust)")
    s.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders of images, or OME-Zarr images (.zarr)")
    s.add_argument("--out", required=True, help="output folder (one <stem>.tif per input; "
                   "OME-Zarr inputs get their labels in <input>/labels/unetseg)")
    s.add_argument("--model", default="default", help="'default' or a checkpoint file")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    s.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"largest tile edge in pixels (default {DEFAULT_TILE})")
    s.add_argument("--axes", help="axes of the inputs, e.g. TYX or ZYXC (default: read from "
                   "the file, else guessed)")
    s.add_argument("--channel", type=int, metavar="N",
                   help="segment channel N (1 is the first) of multi-channel images, e.g. "
                        "the nuclear stain of a two-channel ImageJ or OME-TIFF")
    s.add_argument("--mask-threshold", type=float)
    s.add_argument("--seed-threshold", type=float)
    s.add_argument("--min-size", type=int)
    s.add_argument("--diameter", default="auto", metavar="auto|PX",
                   help="median nucleus diameter in pixels; auto estimates it per plane "
                        "(size-normalized models only)")
    s.add_argument("--mode", default="auto", choices=["auto", "2d", "stitch", "3d"],
                   help="stacks with Z: 2d numbers each plane's objects on their own; stitch "
                        "links them through Z by overlap; 3d averages the model's maps over "
                        "XY, XZ and YZ views and runs a 3D watershed (one id per nucleus, "
                        "the most accurate; auto: 3d for stacks with Z, else 2d)")
    s.add_argument("--voxel-size", metavar="Z,Y,X",
                   help="voxel size in µm (default: read from the file; 1,1,1 if it has "
                        "none); its Z/XY ratio is the anisotropy of --mode 3d, and the label "
                        "files are calibrated with it")
    s.add_argument("--stitch-iou", type=float, default=0.25, metavar="IOU",
                   help="smallest overlap (IoU) of one nucleus in consecutive planes")
    s.add_argument("--track", action="store_true",
                   help="time-lapses: each object keeps the id of the object it overlaps "
                        "most in the previous frame")
    s.add_argument("--tta", action="store_true", help="average over flips (4x slower)")
    s.add_argument("--save-maps", action="store_true", help="also write <stem>_maps.tif")
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help="segment images in N worker processes (a local Dask cluster; needs "
                        "the 'distributed' extra)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="send the work to a running Dask scheduler, e.g. tcp://host:8786 "
                        "(its workers need this package and read the same paths)")
    s.add_argument("--block", type=int, metavar="PX",
                   help="segment 2D images block by block (PX² blocks, objects stitched "
                        "across them): bounded memory for huge images; OME-Zarr inputs and "
                        "TIFFs over 2 GB always go this way (blocks of 2048)")
    s.add_argument("--overwrite", action="store_true", help="replace existing label files")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"],
                   help="int8: MODEL.int8.onnx made by unetseg quantize, faster on CPUs; auto "
                        "(default): int8 on the CPU when that file exists for this checkpoint")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("quantize", allow_abbrev=False,
                       help="make an int8 version of a model for faster CPU use")
    s.add_argument("--trust-code", action="store_true",
                   help="let a checkpoint build its encoder by calling a function it names "
                        "(only for files from people you trust)")
    s.add_argument("model", help="checkpoint file")
    s.add_argument("--images", required=True, help="folder of typical images to calibrate on")
    s.add_argument("-n", type=int, default=32, help="number of calibration images")
    s.add_argument("--out", help="default: MODEL.int8.onnx beside the checkpoint (replaced: "
                   "it belongs to the checkpoint)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    s.set_defaults(func=_cmd_quantize)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``unetseg`` console script."""
    from napari_unetseg.core.checkpoint import CheckpointError
    from napari_unetseg.core.data import DatasetError
    from napari_unetseg.core.encoders import PretrainedWeightsError
    from napari_unetseg.core.io import ImageReadError
    from napari_unetseg.core.train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, CheckpointError, DatasetError, ImageReadError,
            PretrainedWeightsError) as exc:
        print(f"unetseg {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"unetseg {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `unetseg info X | head` closed the pipe: nothing to say
        # Python's documented remedy: point stdout at devnull so that the flush at exit
        # does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except TrainingError as exc:
        print(f"unetseg {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("unetseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
