"""Fine-tuning's learning curve: mAP on one fixed set of unseen images after training on 1, 2,
4 and 8 corrected images for 1, 3 and 10 CPU minutes (issue 27).

Each point is one ``bench_finetune.py --path python`` run (the product's recipe,
``core.training.finetune.fine_tune``) on the same proxy (``--new-stain`` by default), with
the scored images fixed (``--scored-from 8``: the images after the eighth), so the points
differ only by how many images were corrected and for how long. Prints a JSON table and
writes the curve as an SVG (no plotting library needed).

    python benchmarks/learning_curve.py [--images 1,2,4,8] [--minutes 1,3,10]
        [--proxy new-stain|fluorescence-stain|stain-shift] [--svg learning_curve.svg]
        [--merge earlier.json --scored-from 8]

``--merge`` adds the points of an earlier run (its printed JSON; same proxy and scored
images) to the table and the curve, so that a grid can be run one column at a time.

The whole grid takes about sum(minutes) x len(images) of training plus one scoring pass per
point (about 80 minutes on a 2-core machine for the default grid).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def point(n_images: int, minutes: float, proxy: str, scored_from: int) -> dict:
    """One fine-tuning run: before/after mAP_50_95 on the fixed scored set."""
    import bench_finetune

    argv = ["--path", "python", "--corrected", str(n_images), "--minutes", str(minutes),
            "--scored-from", str(scored_from), f"--{proxy}"]
    with contextlib.redirect_stdout(io.StringIO()):  # its JSON: taken from the return value
        report = bench_finetune.main(argv)
    run = report["paths"]["python"]
    return {"images": n_images, "minutes": minutes, "scored_images": report["scored_images"],
            "before": round(report["before"]["mAP_50_95"], 3),
            "after": round(run["after"]["mAP_50_95"], 3), "epochs": run["epochs"],
            "steps": run["steps"]}


def svg(points: list[dict], title: str) -> str:
    """mAP after fine-tuning against corrected images, one line per training time."""
    w, h, m = 520, 340, 50
    xs = sorted({p["images"] for p in points})
    ys = [p["after"] for p in points] + [points[0]["before"]]
    lo, hi = min(ys) - 0.02, max(ys) + 0.02

    def x(n):
        return m + (w - 2 * m) * (xs.index(n) / max(len(xs) - 1, 1))

    def y(v):
        return h - m - (h - 2 * m) * (v - lo) / max(hi - lo, 1e-6)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="{w / 2}" y="20" text-anchor="middle">{title}</text>',
             f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
             f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">corrected images</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
             'text-anchor="middle">mAP 0.5:0.95, unseen images</text>']
    for n in xs:
        parts.append(f'<text x="{x(n)}" y="{h - m + 16}" text-anchor="middle">{n}</text>')
    for v in (lo + 0.02, hi - 0.02):
        parts.append(f'<text x="{m - 6}" y="{y(v) + 4}" text-anchor="end">{v:.2f}</text>')
    before = points[0]["before"]
    parts.append(f'<line x1="{m}" y1="{y(before)}" x2="{w - m}" y2="{y(before)}" '
                 'stroke="gray" stroke-dasharray="4"/>')
    parts.append(f'<text x="{w - m}" y="{y(before) - 4}" text-anchor="end" fill="gray">'
                 f'bundled model {before:.3f}</text>')
    for k, minutes in enumerate(sorted({p["minutes"] for p in points})):
        line = sorted((p for p in points if p["minutes"] == minutes), key=lambda p: p["images"])
        colour = COLOURS[k % len(COLOURS)]
        path = " ".join(f"{x(p['images'])},{y(p['after'])}" for p in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')
        parts += [f'<circle cx="{x(p["images"])}" cy="{y(p["after"])}" r="3" '
                  f'fill="{colour}"/>' for p in line]  # a column of one point shows too
        parts.append(f'<text x="{m + 8}" y="{m + 14 * (k + 1)}" fill="{colour}">'
                     f'{minutes:g} min</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="1,2,4,8")
    ap.add_argument("--minutes", default="1,3,10")
    ap.add_argument("--proxy", default="new-stain",
                    choices=["new-stain", "fluorescence-stain", "stain-shift"])
    ap.add_argument("--svg", default="learning_curve.svg")
    ap.add_argument("--merge", help="JSON printed by an earlier run to add to this one")
    ap.add_argument("--scored-from", type=int, help="score the images after this many "
                    "(default: the largest --images; give the earlier run's with --merge)")
    args = ap.parse_args(argv)
    images = [int(v) for v in args.images.split(",")]
    minutes = [float(v) for v in args.minutes.split(",")]
    scored_from = args.scored_from or max(images)
    if scored_from < max(images):
        raise SystemExit(f"--scored-from {scored_from}: the scored images would include "
                         "corrected ones")
    points = []
    for n in images:
        for m in minutes:
            points.append(point(n, m, args.proxy, scored_from))
            print(json.dumps(points[-1]), file=sys.stderr, flush=True)  # progress
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        if (earlier["proxy"], earlier["scored_from"]) != (args.proxy, scored_from):
            raise SystemExit(f"--merge {args.merge}: another proxy or scored set "
                             f"({earlier['proxy']}, from {earlier['scored_from']})")
        done = {(p["images"], p["minutes"]) for p in points}
        points += [p for p in earlier["points"] if (p["images"], p["minutes"]) not in done]
        points.sort(key=lambda p: (p["images"], p["minutes"]))
    Path(args.svg).write_text(svg(points, f"Fine-tuning on a {args.proxy} (CPU)"))
    print(json.dumps({"proxy": args.proxy, "scored_from": scored_from, "points": points,
                      "svg": str(args.svg)}, indent=2))


if __name__ == "__main__":
    main()
