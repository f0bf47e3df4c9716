"""Training throughput (images/s, 256x256 crops, batch 8) for the options tried. Prints JSON.

Each step is a real training step: augmented crops of the shared DSB2018 training images with
their targets and the U-Net gap weights (what ``unetseg train --weighted-loss`` samples), then
forward, backward and an AdamW update, so the figures include the data preparation that
shares the same CPU cores. Rounds alternate between configurations so that machine noise hits
all alike; the best round of each is printed.

    python benchmarks/bench_training.py [--steps 6] [--rounds 2] [--images 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"

# name: (encoder, encoder kwargs, channels-last, torch.compile)
CONFIGS = {
    "unet_w16_nchw": ("unet", {"base_width": 16}, False, False),
    "unet_w16_channels_last": ("unet", {"base_width": 16}, True, False),
    "unet_w32_channels_last": ("unet", {"base_width": 32}, True, False),
    "effnet_lite0_nchw": ("timm:efficientnet_lite0", {}, False, False),
    "effnet_lite0_channels_last": ("timm:efficientnet_lite0", {}, True, False),
    "effnet_lite0_channels_last_compiled": ("timm:efficientnet_lite0", {}, True, True),
}
# The figures behind this choice are what this script prints; compile_seconds is short when
# inductor's on-disk cache already holds the kernels (the first compile here took 85 s).
CHOSEN = "effnet_lite0_channels_last_compiled (unetseg train --compile): ImageNet init, fastest"


def main():
    from napari_unetseg.core import build_model
    from napari_unetseg.core.training.data import (
        CropSampler,
        find_pairs,
        load_samples,
        read_id_list,
    )
    from napari_unetseg.core.training.loss import segmentation_loss

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=64, help="training images to crop from")
    args = ap.parse_args()
    torch.manual_seed(0)
    val = set(read_id_list(DATA / "val.txt"))
    pairs = [p for p in find_pairs(DATA / "images", DATA / "labels") if p[0].stem not in val]
    setups, compile_seconds, norm = {}, {}, None
    for name, (enc, kw, cl, compiled) in CONFIGS.items():
        m = build_model(enc, 3, "mask_border", encoder_kwargs=kw)
        norm = m.normalization
        if cl:
            m = m.to(memory_format=torch.channels_last)
        setups[name] = [m, torch.optim.AdamW(m.parameters()), cl, compiled]
    samples = load_samples(pairs[:: max(1, len(pairs) // args.images)][: args.images], norm)
    sampler = CropSampler(samples, 256, "mask_border", 3, weighted=True, seed=0)

    def step(m, opt, cl):
        x, y, w = sampler.batch(sampler.rng.integers(len(samples), size=8))
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        segmentation_loss(m(x), y, w, "mask_border").backward()
        opt.step()

    for name, s in setups.items():
        if s[3]:
            s[0] = torch.compile(s[0])
        t = time.perf_counter()
        step(*s[:3])  # warm-up; compiles forward and backward where asked
        if s[3]:
            compile_seconds[name] = round(time.perf_counter() - t, 1)
    best = {}
    for _ in range(args.rounds):
        for name, (m, opt, cl, _) in setups.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                step(m, opt, cl)
            best[name] = max(best.get(name, 0), 8 * args.steps / (time.perf_counter() - t))
    ref = best["effnet_lite0_channels_last"]
    print(json.dumps({
        "torch_threads": torch.get_num_threads(),
        "images_per_second": {k: round(v, 2) for k, v in best.items()},
        "compiled_vs_channels_last": round(best["effnet_lite0_channels_last_compiled"] / ref, 2),
        "compile_seconds": compile_seconds,
        "chosen": CHOSEN,
        "data": f"{len(samples)} training images, augmented crops with gap weights",
    }, indent=2))


if __name__ == "__main__":
    main()
