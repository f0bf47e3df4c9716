"""The arguments of the ``unetseg`` command, one function per subcommand.

Only argparse here: defaults that come from core are imported light (no torch).
"""

from __future__ import annotations

import argparse

from napari_unetseg.core.base.choices import DEVICES, PRECISIONS, STACK_MODES

TRUST_HELP = ("let a checkpoint build its encoder by calling a function it names (only for "
              "files from people you trust)")


def build_parser() -> argparse.ArgumentParser:
    """The parser; ``args.command`` names the subcommand."""
    # No abbreviations: "--tru" must not mean --trust-code, nor "--mod" --mode.
    p = argparse.ArgumentParser(
        prog="unetseg", allow_abbrev=False,
        description="U-Net nuclei/cell segmentation: train, evaluate, predict, inspect models.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_info(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_quantize(sub)
    _add_export(sub)
    return p


def _add_info(sub) -> None:
    s = sub.add_parser("info", allow_abbrev=False,
                       help="print a model's metadata (checkpoint or bioimage.io package) as JSON")
    s.add_argument("model", help="checkpoint file, bioimage.io package (.zip, rdf.yaml), or "
                   "'default' for the bundled model")


def _add_train(sub) -> None:
    from napari_unetseg.core.base.modes import TARGET_MODES
    from napari_unetseg.core.inference.diameter import DEFAULT_CANONICAL_DIAMETER

    s = sub.add_parser("train", allow_abbrev=False, help="train a model on image/label pairs")
    s.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
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
                        "one image held out from 3 on, or the --val-list images, to score "
                        "the first half, then trained on too; thresholds tuned on the images "
                        "trained on; int8 model made); its architecture is kept")
    s.add_argument("--no-tune", action="store_true",
                   help="keep default thresholds instead of tuning them on the validation set")


def _add_evaluate(sub) -> None:
    s = sub.add_parser("evaluate", allow_abbrev=False,
                       help="score predicted labels against ground truth (DSB metric)")
    s.add_argument("--gt", required=True, help="folder of ground-truth label images")
    s.add_argument("--pred", required=True, help="folder of predicted label images (same stems)")
    s.add_argument("--csv", help="also write per-image scores to this CSV file")
    s.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")


def _add_predict(sub) -> None:
    from napari_unetseg.core.inference.predictor import DEFAULT_TILE  # light: torch loads on use

    s = sub.add_parser("predict", allow_abbrev=False, help="segment images into TIFF label files")
    s.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    s.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders of images, or OME-Zarr images (.zarr)")
    s.add_argument("--out", required=True, help="output folder (one <stem>.tif per input; "
                   "OME-Zarr inputs get their labels in <input>/labels/unetseg)")
    s.add_argument("--model", default="default", help="'default', a checkpoint file, or a "
                   "bioimage.io package (.zip, rdf.yaml)")
    s.add_argument("--device", default="auto", choices=DEVICES)
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
    s.add_argument("--mode", default="auto", choices=STACK_MODES,
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
    s.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="int8: MODEL.int8.onnx made by unetseg quantize, faster on CPUs; auto "
                        "(default): int8 on the CPU when that file exists for this checkpoint")


def _add_quantize(sub) -> None:
    s = sub.add_parser("quantize", allow_abbrev=False,
                       help="make an int8 version of a model for faster CPU use")
    s.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    s.add_argument("model", help="checkpoint file")
    s.add_argument("--images", required=True, help="folder of typical images to calibrate on")
    s.add_argument("-n", type=int, default=32, help="number of calibration images")
    s.add_argument("--out", help="default: MODEL.int8.onnx beside the checkpoint (replaced: "
                   "it belongs to the checkpoint)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _add_export(sub) -> None:
    s = sub.add_parser("export", allow_abbrev=False,
                       help="write a model as a BioImage Model Zoo package (bioimage.io)")
    s.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    s.add_argument("model", help="checkpoint file, or 'default' for the bundled model")
    s.add_argument("--out", required=True, help="the package to write (.zip; never replaced)")
    s.add_argument("--image", help="image for the test tensors and the cover (dark background, "
                   "at least 256x256; default: the fluorescence sample)")
    s.add_argument("--name", help="the model's name in the zoo")
    s.add_argument("--author", action="append", help="an author's name (repeat for several; "
                   "default: you, or the makers of the bundled model)")
