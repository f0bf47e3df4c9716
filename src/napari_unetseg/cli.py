"""The ``unetseg`` command: info, train, evaluate and predict without a GUI."""

from __future__ import annotations

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
    from napari_unetseg.core.inference.package import is_package, read_package
    from napari_unetseg.core.network.checkpoint import read_checkpoint_info

    info = (read_package(args.model).info() if is_package(args.model)
            else read_checkpoint_info(args.model))
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
    from napari_unetseg.core.io.images import read_image, read_labels
    from napari_unetseg.core.training.data import find_pairs, read_id_list
    from napari_unetseg.core.training.finetune import FINETUNE_DEFAULTS, TrainingPair, fine_tune

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
    from napari_unetseg.core.network.checkpoint import load_checkpoint

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
    from napari_unetseg.core.inference.diameter import parse_diameter
    from napari_unetseg.core.training.data import find_pairs, read_id_list
    from napari_unetseg.core.training.train import TrainConfig, train
    from napari_unetseg.core.training.validation import finalize_thresholds

    _check_train_args(args)
    if args.init:
        return _cmd_finetune(args)
    for key, value in _SCRATCH_DEFAULTS.items():
        if getattr(args, key) is None and not (key == "epochs" and args.time_budget):
            setattr(args, key, value)
    if args.canonical_diameter is None:
        from napari_unetseg.core.inference.diameter import DEFAULT_CANONICAL_DIAMETER

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

    from napari_unetseg.core.instances.metrics import evaluate_folders

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
    from napari_unetseg.core.io.images import is_label_tiff, list_images
    from napari_unetseg.core.run.batch import is_zarr

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
    from napari_unetseg.core.run.batch import is_zarr

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
    from napari_unetseg.core.base.thresholds import KEYS, ThresholdError, Thresholds

    try:
        Thresholds.of(None, **{k: getattr(args, k) for k in KEYS})
    except ThresholdError as exc:
        raise UserError(f"--{exc.name.replace('_', '-')} {exc.reason}") from None


def _check_predict_args(args):
    """Every check ``predict`` can make before reading an image; returns the voxel size."""
    from napari_unetseg.core.inference.diameter import parse_diameter
    from napari_unetseg.core.run.volume import check_anisotropy, parse_voxel_size

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
        check_anisotropy(voxel_size)
    check_output_name(args.out)
    return voxel_size


def _predict_inputs(args) -> tuple[list[Path], Path]:
    """The input files and the output folder (made, writable), or a one-line UserError."""
    from napari_unetseg.core.run.batch import is_zarr

    files = _collect_inputs(args.inputs)
    if not files:
        raise UserError("no input images")
    if args.block is not None:
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
    return files, out_dir


def _progress_bars(args, n_files: int):
    """(bar over images, per-record report, per-image tile progress) for ``run_batch``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=n_files, desc="images", unit="image", disable=args.quiet)

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

    return bar, report, tile_progress


def _cmd_predict(args) -> int:
    from napari_unetseg.core.run.batch import ModelSpec, OutputError, PredictJob, loaded, run_batch

    voxel_size = _check_predict_args(args)
    files, out_dir = _predict_inputs(args)
    spec = ModelSpec(str(args.model), args.device, args.precision, args.trust_code)
    # Loaded here first (and kept for this process's tasks): a bad checkpoint is one line
    # before any work is sent anywhere.
    predictor = loaded(spec)
    from napari_unetseg.core.base.thresholds import KEYS, Thresholds

    overrides = {k: getattr(args, k) for k in KEYS if getattr(args, k) is not None}
    print(f"model {args.model} on {predictor.device} ({predictor.backend}); thresholds "
          f"{Thresholds.over(predictor.thresholds, overrides).as_dict()}", file=sys.stderr)
    job = PredictJob(
        model=spec, thresholds=overrides, axes=args.axes, tile=args.tile, tta=args.tta,
        diameter=args.diameter, mode=args.mode, stitch_iou=args.stitch_iou, track=args.track,
        voxel_size=voxel_size, save_maps=args.save_maps, overwrite=args.overwrite,
        block=args.block, channel=args.channel)
    bar, report, tile_progress = _progress_bars(args, len(files))
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
    from napari_unetseg.core.inference.predictor import check_axes, planes_of
    from napari_unetseg.core.io.images import read_image_with_axes

    image, axes = read_image_with_axes(path)
    planes, _ = planes_of(image, check_axes(image.shape, axes))
    return planes[len(planes) // 2]


def _cmd_quantize(args) -> int:
    from napari_unetseg.core.inference.quantize import make_int8
    from napari_unetseg.core.io.images import list_images

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


def _cmd_export(args) -> int:
    from napari_unetseg.core.io.images import read_image
    from napari_unetseg.core.run.zoo import export_bioimageio

    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise UserError(f"--out {out}: a bioimage.io package is a .zip file; choose a name "
                        "ending in .zip")
    if out.exists():
        raise UserError(f"--out {out} exists; choose a new file name")
    check_output_name(args.out)
    image = None if args.image is None else read_image(args.image)
    try:
        path = export_bioimageio(args.model, out, image=image, name=args.name,
                                 authors=args.author, trust_code=args.trust_code)
    except ImportError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"package": str(path)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``unetseg`` console script."""
    from napari_unetseg.cli_parser import build_parser
    from napari_unetseg.core.io.images import ImageReadError
    from napari_unetseg.core.network.checkpoint import CheckpointError
    from napari_unetseg.core.network.encoders import PretrainedWeightsError
    from napari_unetseg.core.training.data import DatasetError
    from napari_unetseg.core.training.train import TrainingError

    args = build_parser().parse_args(argv)
    commands = {"info": _cmd_info, "train": _cmd_train, "evaluate": _cmd_evaluate,
                "predict": _cmd_predict, "quantize": _cmd_quantize, "export": _cmd_export}
    try:
        return commands[args.command](args)
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
