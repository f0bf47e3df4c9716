"""The CUDA path, checked and measured in one command; prints JSON.

On a machine with CUDA (no network, no install needed)::

    PYTHONPATH=src python benchmarks/gpu_check.py

Checks (each an entry in "checks" with "ok"):
- GPU inference equals CPU fp32 inference within bf16 tolerance, on a real sample image;
- tiled equals untiled on the GPU;
- out-of-memory retry: with the allocator capped, a plane still comes out whole and equal,
  in smaller batches or tiles;
- a few real training steps (augmented crops, gap weights) lower the loss.
Figures: inference MP/s (fp32, bf16 autocast, channels-last, batches of tiles), training
img/s, peak GPU memory, beside the CPU figure of the same network in the same run.
``--device cpu`` runs the same checks on the CPU (no out-of-memory check): the test suite does
that with ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up (kernels, cudnn autotune, allocator)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _compare(name: str, a: np.ndarray, b: np.ndarray) -> dict:
    """Two probability maps agree: GPU inference runs in bf16, so single pixels may differ
    by 0.1-0.4 near decision edges (seen on an H200); what must hold is the decision at
    0.5 almost everywhere and a small mean difference."""
    diff = np.abs(a - b)
    agree = float(((a > 0.5) == (b > 0.5)).mean())
    mean = float(diff.mean())
    return {"name": name, "max_abs_diff": float(diff.max()), "mean_abs_diff": mean,
            "agree_at_0.5": agree, "ok": agree > 0.995 and mean < 0.01}


def inference_checks(device, quick: bool, model_path: str = "default") -> tuple[list, dict]:
    import torch

    from napari_unetseg.core.inference.predictor import Predictor
    from napari_unetseg.core.io.images import read_image

    image = read_image(ROOT / "sample_data" / "fluorescence_nuclei.png")
    checks, figures = [], {}
    cpu = Predictor(model_path, "cpu", precision="fp32")
    dev = Predictor(model_path, str(device), precision="fp32")
    ref = cpu.predict_plane(image)
    got = dev.predict_plane(image)
    checks.append(_compare("device maps equal CPU fp32", ref, got))
    # Tiles that hand over 256 px from their edges: the bundled model's reach (README).
    tiled = dev.predict_plane(image, tile=640, overlap=512)
    checks.append(_compare("tiled equals untiled", got, tiled))

    if device.type == "cuda" and not quick:
        big = np.tile(image, (4, 4) + (1,) * (image.ndim - 2))[:2048, :2048]
        whole = dev.predict_plane(big, tile=2048, batch_size=4)
        free, total = torch.cuda.mem_get_info()
        used = torch.cuda.memory_allocated()
        # Cap the allocator so that one 2048 tile does not fit but a 1024 one does.
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        dev.predict_plane(big[:1024, :1024], tile=1024, batch_size=1)
        need_1024 = torch.cuda.max_memory_allocated() - used
        cap = (used + 2.2 * need_1024) / total
        torch.cuda.set_per_process_memory_fraction(cap)
        torch.cuda.empty_cache()
        retry = Predictor(model_path, str(device), precision="fp32")
        try:
            capped = retry.predict_plane(big, tile=2048, batch_size=4)
            c = _compare("out-of-memory retry", whole, capped)
            c.update(memory_cap_GiB=cap * total / 2**30, max_tile_after=retry.max_tile,
                     ok=c["ok"] and retry.max_tile < 2048)
            checks.append(c)
        except Exception as exc:  # report, do not stop the other checks
            checks.append({"name": "out-of-memory retry", "ok": False, "error": repr(exc)[:300]})
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.empty_cache()

    # Throughput of the network itself on 1024² tiles, batches of 4.
    size, batch = (512, 2) if quick else (1024, 4)
    model = dev.model.to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    mp = batch * size * size / 1e6
    variants = {"fp32": (None, False), "bf16": (torch.bfloat16, False),
                "bf16_channels_last": (torch.bfloat16, True)}
    if device.type == "cpu":
        variants = {"fp32": (None, False)}
    for name, (dtype, cl) in variants.items():
        m = model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        xi = x.contiguous(memory_format=torch.channels_last) if cl else x

        def run(m=m, xi=xi, dtype=dtype):
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or
                                                        torch.float32, enabled=dtype is not None):
                m(xi)
            _sync(device)

        figures[f"network_MPps_{name}"] = round(mp / _timed(run, 2 if quick else 5), 2)
    big = np.tile(image, (4, 4) + (1,) * (image.ndim - 2))[:2048, :2048]
    t = _timed(lambda: dev.predict_plane(big), 1 if quick else 3)
    figures["predict_plane_2048_MPps"] = round(2048 * 2048 / 1e6 / t, 2)
    figures["predict_plane_backend"] = dev.backend
    if device.type == "cuda":
        figures["peak_gpu_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return checks, figures


def training_check(device, quick: bool, data: Path | None) -> tuple[dict, dict]:
    import torch

    from napari_unetseg.core.base.normalize import DEFAULT_NORMALIZATION
    from napari_unetseg.core.network.model import build_model
    from napari_unetseg.core.training.data import CropSampler, find_pairs, load_samples
    from napari_unetseg.core.training.loss import segmentation_loss

    if data is not None and (data / "images").is_dir():
        pairs = find_pairs(data / "images", data / "labels")[:64]
    else:
        s = ROOT / "sample_data"
        pairs = [(s / f"{n}.png", s / "labels" / f"{n}.tif") for n in
                 ("fluorescence_nuclei", "tissue_stained", "brightfield_nuclei")]
    samples = load_samples(pairs, DEFAULT_NORMALIZATION)
    sampler = CropSampler(samples, 256, "mask_border", 3, True, canonical_diameter=24.0)
    batch = 4 if quick else 32
    model = build_model("timm:efficientnet_lite0", 3, "mask_border").to(device)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    steps = 4 if quick else 30
    fixed = sampler.batch(np.arange(batch) % len(samples), np.random.default_rng(0))
    x, y, w = (t.to(device) for t in fixed)
    x = x.contiguous(memory_format=torch.channels_last)
    losses = []

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
        loss = segmentation_loss(logits.float(), y, w, "mask_border")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    gpu_ips = steps * batch / (time.perf_counter() - t)
    t = time.perf_counter()
    n_crops = 8 if quick else 64
    for k in range(n_crops // 8):
        sampler.batch(np.arange(8) % len(samples), np.random.default_rng(k))
    crops_ps = n_crops / (time.perf_counter() - t)
    check = {"name": "training steps lower the loss on a fixed batch", "first": losses[0],
             "last": losses[-1], "ok": losses[-1] < losses[0]}
    return check, {"training_network_img_per_s": round(gpu_ips, 1),
                   "crops_per_s_one_process": round(crops_ps, 1), "train_batch": batch}


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small sizes (the CPU test)")
    ap.add_argument("--model", default="default", help="checkpoint (default: the bundled one)")
    ap.add_argument("--data", type=Path, help="DSB folder (images/, labels/) for the crops")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available on this machine"}))
        return 2
    t0 = time.perf_counter()
    checks, figures = inference_checks(device, args.quick, args.model)
    tcheck, tfig = training_check(device, args.quick, args.data)
    checks.append(tcheck)
    figures.update(tfig)
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name()
        figures["peak_gpu_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    out = {"device": str(device), "torch": torch.__version__, "checks": checks,
           "figures": figures, "all_ok": all(c["ok"] for c in checks),
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=1))
    return 0 if out["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
