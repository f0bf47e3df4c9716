"""Teach the model a stain: fine-tune on a few corrected images, score the others.

The stained-tissue images of val.txt (never used to train the bundled model): the first
``--corrected`` of them (sorted by id) play the user's corrected images, the rest are scored
before and after ``--minutes`` of CPU fine-tuning from the bundled model. Both ways a user
fine-tunes run the same recipe (core.finetune.fine_tune): ``--path python`` calls it,
``--path cli`` runs ``unetseg train --init`` on the images written to disk, ``both`` (the
default) runs one after the other and prints both. Prints JSON.

    python benchmarks/bench_finetune.py [--minutes 10] [--corrected 5] [--lr 5e-4]
        [--path both|python|cli] [--freeze-encoder] [--no-tune] [--fold-in 0.5]
        [--hold-out N] [--seed S] [--precision auto|fp32] [--score-corrected]
        [--stain-shift | --new-stain | --fluorescence-stain] [--ceiling]
        [--set FIELD=VALUE ...]

``--new-stain`` redraws the tissue images with dyes that neither the training set nor the
augmentation has (core.augment.restain: green nuclei on a cyan counterstain): the
situation of a lab with its own stain. ``--fluorescence-stain`` is a second proxy, so that
nothing is tuned to one: 15 val fluorescence images (gray nuclei on black) drawn as a stain
would draw them (core.augment.stain_fluorescence).

``--ceiling`` trains on the scored images themselves (no hold-out): not a user's situation,
but the most that fine-tuning could give on them, against which the real gain is read.
``--set`` and ``--fold-in`` pass TrainConfig fields and the fold-in share to the recipe
(for comparing recipes; Python path); ``--hold-out`` (how many images are held out; 0:
every image trains throughout) and ``--seed`` go to both paths. ``--precision fp32`` scores
the fp32 models instead of the int8 ones a CPU user gets (int8 results differ a little
between CPUs); ``--score-corrected`` also scores the corrected images themselves (how well
the run fitted what it was taught).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_images(args):
    """(name, image, labels) of the proxy's images, sorted by id."""
    from napari_unetseg.core.base.normalize import DEFAULT_NORMALIZATION
    from napari_unetseg.core.base.styles import image_style
    from napari_unetseg.core.training.data import find_pairs, load_pair, read_id_list

    pairs = find_pairs(DATA / "images", DATA / "labels", read_id_list(DATA / "val.txt"))
    loaded = [(ip.stem, *load_pair(ip, lp)) for ip, lp in pairs]
    style = "gray" if args.fluorescence_stain else "color"
    chosen = sorted((x for x in loaded if image_style(x[1], DEFAULT_NORMALIZATION) == style),
                    key=lambda x: x[0])
    if args.stain_shift:
        from napari_unetseg.core.training.augment import stain_shift

        chosen = [(n, stain_shift(im[..., :3], seed=0), gt) for n, im, gt in chosen]
    elif args.new_stain:
        from napari_unetseg.core.training.augment import restain

        chosen = [(n, restain(im[..., :3]), gt) for n, im, gt in chosen]
    elif args.fluorescence_stain:
        from napari_unetseg.core.training.augment import stain_fluorescence

        # 15 of them, like the tissue set: every third fluorescence image.
        chosen = [(n, stain_fluorescence(im), gt) for n, im, gt in chosen[::3][:15]]
    return chosen


def run_python(args, corrected, out: Path, options: dict) -> dict:
    from napari_unetseg.core.training.finetune import TrainingPair, fine_tune

    epochs = []
    result = fine_tune(args.base, [TrainingPair(n, im, gt) for n, im, gt in corrected], out,
                       minutes=args.minutes, lr=args.lr, on_epoch=epochs.append,
                       freeze_encoder=args.freeze_encoder, tune_thresholds=not args.no_tune,
                       hold_out=False if args.ceiling else args.hold_out,
                       train_options=options, fold_in=args.fold_in, seed=args.seed)
    # None for the epochs of the second half, which train on the held-out image too.
    result["per_epoch_held_out"] = [round(float(e["mAP_50_95"]), 3) if "mAP_50_95" in e
                                    else None for e in epochs]
    return result


def run_cli(args, corrected, out: Path, tmp: Path) -> dict:
    import tifffile

    images, labels = tmp / "cli_images", tmp / "cli_labels"
    images.mkdir()
    labels.mkdir()
    for n, im, gt in corrected:
        tifffile.imwrite(images / f"{n}.tif", im)
        tifffile.imwrite(labels / f"{n}.tif", gt)
    cmd = [sys.executable, "-m", "napari_unetseg.cli", "train", "--init", args.base,
           "--images", str(images), "--labels", str(labels), "--time-budget",
           str(args.minutes), "--lr", str(args.lr), "--out", str(out)]
    if args.no_tune:
        cmd.append("--no-tune")
    cmd += ["--seed", str(args.seed)]
    if args.ceiling or args.hold_out is not None:  # the last N images as the validation list
        n = 0 if args.ceiling else args.hold_out
        (tmp / "val.txt").write_text("".join(f"{name}\n" for name, *_ in
                                             corrected[len(corrected) - n:]))
        cmd += ["--val-list", str(tmp / "val.txt")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"unetseg train --init failed: {r.stderr.strip().splitlines()[-1]}")
    return json.loads(r.stdout)


def main(argv=None):
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.instances.metrics import image_scores, summarize
    from napari_unetseg.core.run.pipeline import segment_image
    from napari_unetseg.core.training.finetune import FINETUNE_DEFAULTS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--corrected", type=int, default=5)
    ap.add_argument("--scored-from", type=int, default=None, metavar="K",
                    help="score images K.. (default: those after the corrected ones); a "
                         "learning curve keeps one scored set for every --corrected")
    ap.add_argument("--lr", type=float, default=FINETUNE_DEFAULTS["lr"])
    ap.add_argument("--fold-in", type=float, default=FINETUNE_DEFAULTS["fold_in"])
    ap.add_argument("--hold-out", type=int, default=None, metavar="N",
                    help="images held out (default: the recipe's rule)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=["auto", "fp32"], default="auto",
                    help="score the int8 CPU models (auto) or the fp32 ones")
    ap.add_argument("--score-corrected", action="store_true",
                    help="also score the corrected images (how well the run fitted them)")
    ap.add_argument("--base", default="default")
    ap.add_argument("--path", choices=["both", "python", "cli"], default="both")
    ap.add_argument("--freeze-encoder", action="store_true")
    ap.add_argument("--no-tune", action="store_true", help="keep the base model's thresholds")
    stain = ap.add_mutually_exclusive_group()
    stain.add_argument("--stain-shift", action="store_true",
                       help="all the tissue images stain-shifted (core.augment.stain_shift, "
                            "seed 0): a shift within the augmentation's range")
    stain.add_argument("--new-stain", action="store_true",
                       help="all the tissue images redrawn with dyes the model has never seen "
                            "(core.augment.restain)")
    stain.add_argument("--fluorescence-stain", action="store_true",
                       help="15 val fluorescence images drawn as a stain would draw them "
                            "(core.augment.stain_fluorescence)")
    ap.add_argument("--ceiling", action="store_true",
                    help="train on the scored images themselves: the most fine-tuning can give")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="TrainConfig fields for the recipe, e.g. colour_augment=false")
    args = ap.parse_args(argv)
    options = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    chosen = load_images(args)
    corrected = chosen[: args.corrected]
    others = chosen[args.corrected if args.scored_from is None else args.scored_from:]
    if args.scored_from is not None and args.scored_from < args.corrected:
        raise SystemExit("--scored-from must not be below --corrected (a corrected image "
                         "would be scored)")
    if args.ceiling:
        corrected = others

    def score(model, images=others) -> dict:
        pred = Predictor(model, "cpu", precision=args.precision)
        return dict(summarize([image_scores(gt, segment_image(pred, im))
                               for _, im, gt in images]), backend=pred.backend)

    before = score(args.base)
    report = {"base": args.base, "proxy": ("stain_shift" if args.stain_shift else "new_stain"
                                           if args.new_stain else "fluorescence_stain"
                                           if args.fluorescence_stain else "as_is"),
              "ceiling": args.ceiling, "corrected_images": len(corrected),
              "scored_images": len(others), "minutes": args.minutes, "lr": args.lr,
              "fold_in": args.fold_in, "hold_out": args.hold_out, "seed": args.seed,
              "precision": args.precision, "recipe_options": options, "before": before,
              "paths": {}}
    paths = ["python", "cli"] if args.path == "both" else [args.path]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for path in paths:
            t0 = time.perf_counter()
            out = tmp / f"{path}.pt"
            result = (run_python(args, corrected, out, options) if path == "python"
                      else run_cli(args, corrected, out, tmp))
            seconds = time.perf_counter() - t0
            after = score(result["checkpoint"])
            report["paths"][path] = {
                "fine_tune_seconds": round(seconds), "epochs": result["epochs"],
                "steps": result["steps"],
                "held_out_before_after": [result["before"], result["after"]],
                "thresholds": result["thresholds"], "after": after,
                **({"corrected_before_after": [
                    round(score(args.base, corrected)["mAP_50_95"], 3),
                    round(score(result["checkpoint"], corrected)["mAP_50_95"], 3)]}
                   if args.score_corrected else {}),
                "gain_mAP_50_95": round(after["mAP_50_95"] - before["mAP_50_95"], 3),
                **({"per_epoch_held_out": result["per_epoch_held_out"]}
                   if "per_epoch_held_out" in result else {}),
            }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
