"""Preparing a model for fast inference: ONNX Runtime on CPU, PyTorch on GPU.

On this project's target machines (CPUs without a GPU) ONNX Runtime runs the exported
network about 4x faster than eager PyTorch, with the same results to ~1e-5 (it fuses batch
norm and activations into the convolutions and has faster depthwise kernels); see
``benchmarks/bench_inference.py``. When onnxruntime is missing or the export fails,
PyTorch with channels-last tensors is used instead.
"""

from __future__ import annotations

import copy
import io
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

#: ``NAPARI_UNETSEG_BACKEND=torch`` forces the PyTorch path (for comparison and debugging).
BACKEND_ENV = "NAPARI_UNETSEG_BACKEND"


def probability_module(model):
    """The model followed by its activation (sigmoid or softmax): probabilities out."""
    import torch

    class WithActivation(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.probabilities(self.net(x))

    return WithActivation(model).eval()


class TorchRunner:
    """Runs the model with PyTorch, channels-last; bf16 (or fp16) autocast on GPUs."""

    backend = "torch"

    def __init__(self, model, device):
        import torch

        self.device = device
        self.module = probability_module(model).to(device)
        # Channels-last on every device: faster on GPUs too (benchmarks/gpu_check.py).
        self.module = self.module.to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch).to(self.device)
        with torch.inference_mode():
            if self.device.type == "cpu":
                return self.module(x.contiguous(memory_format=torch.channels_last)).numpy()
            dtype = torch.float16
            if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
                dtype = torch.bfloat16
            with torch.autocast(self.device.type, dtype=dtype):
                y = self.module(x.contiguous(memory_format=torch.channels_last))
            return y.float().cpu().numpy()


def split_skip_concats(model):
    """A copy of ``model`` whose decoder stages add two convolutions instead of concatenating.

    ``conv(cat(a, b)) == conv_a(a) + conv_b(b)`` with the weight split along its input
    channels. ONNX Runtime's CPU kernels run in a blocked (NCHWc) layout; a concatenation
    there is done in plain NCHW and reordered back, and at full resolution with the image
    as skip (3 + 16 channels) the convolution cannot use the blocked kernels at all. The
    split form keeps every tensor blocked and lets the addition fuse into the convolution:
    the same function, ~15 % less time for the bundled model (benchmarks/bench_inference.py).
    """
    import torch
    from torch import nn

    class SplitStage(nn.Module):
        def __init__(self, stage):
            super().__init__()
            conv = stage.conv[0]
            n_up = conv.in_channels - stage.conv_skip_channels
            self.up = stage.up
            self.conv_up = nn.Conv2d(n_up, conv.out_channels, conv.kernel_size,
                                     padding=conv.padding, bias=False)
            self.conv_skip = nn.Conv2d(stage.conv_skip_channels, conv.out_channels,
                                       conv.kernel_size, padding=conv.padding, bias=False)
            bn = stage.conv[1]
            # Batch norm (eval statistics) folded into both halves, its shift into one bias,
            # so that the sum is followed by ReLU only and fuses into the convolution.
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                self.conv_up.weight.copy_(conv.weight[:, :n_up] * scale[:, None, None, None])
                self.conv_skip.weight.copy_(conv.weight[:, n_up:] * scale[:, None, None, None])
                self.conv_up.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
            self.rest = stage.conv[2:]

        def forward(self, x, skip):
            return self.rest(self.conv_skip(skip) + self.conv_up(self.up(x)))

    model = copy.deepcopy(model).cpu()
    for i, stage in enumerate(model.stages):
        conv = stage.conv[0]
        plain = conv.bias is None and conv.groups == 1
        if stage.conv_skip_channels and plain and isinstance(stage.conv[1], nn.BatchNorm2d):
            model.stages[i] = SplitStage(stage)
    return model


def _export_here(model) -> bytes:
    import warnings

    import torch

    module = probability_module(split_skip_concats(model)).cpu()
    m = int(model.total_stride)
    dummy = torch.zeros(1, model.in_channels, 2 * m, 2 * m)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about tracing
        torch.onnx.export(
            module, (dummy,), buf, input_names=["x"], output_names=["p"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "p": {0: "n", 2: "h", 3: "w"}},
            opset_version=17, dynamo=False,
        )
    return buf.getvalue()


def export_onnx(model) -> bytes:
    """The model with its activation as ONNX bytes (dynamic batch and size)."""
    return _export_here(model)


class OnnxRunner:
    """Runs the exported model (or its int8 version) with ONNX Runtime on the CPU."""

    def __init__(self, model, threads: int | None = None, onnx_file: str | None = None,
                 onnx_bytes: bytes | None = None, backend: str | None = None):
        import onnxruntime as ort
        import torch

        if onnx_bytes is not None:  # a package's weights
            self.backend = backend or "onnxruntime"
        elif onnx_file is not None:
            with open(onnx_file, "rb") as f:
                onnx_bytes = f.read()
            self.backend = "onnxruntime-int8"
        else:
            onnx_bytes = export_onnx(model)
            self.backend = "onnxruntime"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        # The planned memory pattern is cached per input shape, and tiles come in several
        # shapes (edge tiles, bands of big images): each kept its own block, 0.5 GB more for
        # an 8192² image. Without it: the same speed (benchmarks/bench_inference.py).
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(
            onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch,
                                                                             np.float32)})[0]


def optimize_for_inference(model, device, int8_file: str | None = None,
                           int8_required: bool = False):
    """Return ``run(batch) -> probabilities`` for (N, C, H, W) float32 batches.

    H and W must be multiples of ``model.total_stride`` (the Predictor pads tiles). On the
    CPU the int8 ONNX file chosen by :func:`int8_file_for` is run when one is given.
    """
    model.eval()
    wanted = os.environ.get(BACKEND_ENV, "auto").lower()
    if device.type == "cpu" and wanted in ("auto", "onnxruntime"):
        try:
            if int8_file is not None:
                return OnnxRunner(model, onnx_file=int8_file)
            return OnnxRunner(model)
        except ImportError:
            if int8_required:
                raise ValueError("precision='int8' needs onnxruntime (pip install "
                                 "onnxruntime)") from None
            log.info("onnxruntime not installed; using PyTorch on the CPU")
        except Exception as exc:  # unusual custom encoders may not export
            if int8_required:
                msg = str(exc).splitlines()[0][:160]
                raise ValueError(f"the int8 model {int8_file} cannot run ({msg}); run unetseg "
                                 "quantize again") from None
            log.warning("ONNX export failed (%s); using PyTorch on the CPU", exc)
    return TorchRunner(model, device)


def int8_path(checkpoint: str | os.PathLike) -> str:
    """Where the int8 ONNX model of a checkpoint lives: ``<name>.int8.onnx`` beside it."""
    p = os.fspath(checkpoint)
    return (p[:-3] if p.endswith(".pt") else p) + ".int8.onnx"


#: ONNX metadata key holding the SHA-256 of the checkpoint file an int8 model was made from.
SOURCE_KEY = "napari_unetseg.source_sha256"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def int8_source(int8_file: str | os.PathLike) -> str | None:
    """The checkpoint fingerprint recorded in an int8 model, or None for files without one."""
    import onnx

    meta = onnx.load(os.fspath(int8_file), load_external_data=False).metadata_props
    return next((m.value for m in meta if m.key == SOURCE_KEY), None)


def int8_file_for(checkpoint, required: bool) -> str | None:
    """The int8 ONNX file to run for ``checkpoint``, or None to run fp32.

    With ``required`` (precision="int8") a missing or stale file is a ValueError; otherwise
    it just means fp32.
    """
    if checkpoint is None:
        if required:
            raise ValueError("precision='int8' needs a checkpoint path (or 'default')")
        return None
    path = int8_path(checkpoint)
    if not os.path.exists(path):
        if required:
            raise ValueError(f"no int8 model at {path}; make one with unetseg quantize")
        return None
    try:
        if os.path.getsize(path) == 0:
            raise ValueError("empty file")
        source = int8_source(path)
    except Exception as exc:  # a damaged file: say so, and run fp32 unless int8 was asked for
        if required:
            raise ValueError(f"{path} is not a readable ONNX model ({exc}); run unetseg "
                             "quantize again") from None
        log.warning("%s is not a readable ONNX model; running fp32", path)
        return None
    if source is not None and source != file_sha256(checkpoint):
        msg = f"{path} was made from another version of {checkpoint}; run unetseg quantize again"
        if required:
            raise ValueError(msg)
        log.warning("%s (running fp32 meanwhile)", msg)
        return None
    if source is None and not required:
        # Made before int8 files recorded their checkpoint: it may be stale, so only on request.
        log.info("%s does not say which checkpoint it was made from; running fp32 (run "
                 "unetseg quantize again to use int8 by default)", path)
        return None
    return path
