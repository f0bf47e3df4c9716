"""Training throughput (images/s, 256x256 crops, batch 8) for the options tried. Prints JSON.

Each configuration trains a few steps on random crops of the shared data in this process;
rounds alternate between configurations so machine noise hits all alike.

    python benchmarks/bench_training.py [--steps 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# name: (encoder, encoder kwargs, channels-last, torch.compile)
CONFIGS = {
    "unet_w16_nchw": ("unet", {"base_width": 16}, False, False),
    "unet_w16_channels_last": ("unet", {"base_width": 16}, True, False),
    "unet_w32_channels_last": ("unet", {"base_width": 32}, True, False),
    "effnet_lite0_nchw": ("timm:efficientnet_lite0", {}, False, False),
    "effnet_lite0_channels_last": ("timm:efficientnet_lite0", {}, True, False),
    "effnet_lite0_channels_last_compiled": ("timm:efficientnet_lite0", {}, True, True),
}

CHOSEN = ("effnet_lite0_channels_last_compiled (unetseg train --compile): ImageNet init, "
          "fastest; compiling costs about 1.5 minutes once per run")


def main():
    from napari_unetseg.core import build_model
    from napari_unetseg.core.train import loss_fn

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.rand(8, 3, 256, 256)
    y = (torch.rand(8, 2, 256, 256) > 0.5).float()
    setups = {}
    compile_seconds = {}
    for name, (enc, kw, cl, compiled) in CONFIGS.items():
        m = build_model(enc, 3, "mask_border", encoder_kwargs=kw)
        if cl:
            m = m.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(m.parameters())
        if compiled:
            m = torch.compile(m)
            t = time.perf_counter()
            xb = x.contiguous(memory_format=torch.channels_last) if cl else x
            loss_fn(m(xb), y, None, "mask_border").backward()  # compiles forward + backward
            compile_seconds[name] = round(time.perf_counter() - t, 1)
        setups[name] = (m, opt, cl)
    best = {}
    for _ in range(args.rounds):
        for name, (m, opt, cl) in setups.items():
            xb = x.contiguous(memory_format=torch.channels_last) if cl else x
            loss_fn(m(xb), y, None, "mask_border").backward()  # warm-up step
            t = time.perf_counter()
            for _ in range(args.steps):
                opt.zero_grad()
                loss_fn(m(xb), y, None, "mask_border").backward()
                opt.step()
            rate = 8 * args.steps / (time.perf_counter() - t)
            best[name] = max(best.get(name, 0), rate)
    print(json.dumps({
        "torch_threads": torch.get_num_threads(),
        "images_per_second": {k: round(v, 2) for k, v in best.items()},
        "compile_seconds": compile_seconds,
        "chosen": CHOSEN,
    }, indent=2))


if __name__ == "__main__":
    main()
