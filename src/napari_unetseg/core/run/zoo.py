"""Models as BioImage Model Zoo packages (bioimage.io, model spec 0.5): export.

A package is a zip with ``rdf.yaml`` (what the model takes and gives, how to preprocess),
the weights as ONNX and TorchScript (both run without any code from this project), test
tensors from a real image, a cover and documentation saying how the maps become instances.
The project's own settings (target mode, thresholds, canonical nucleus diameter,
normalization, provenance) travel in ``config.napari_unetseg`` so that a round trip loses
nothing. Needs the optional ``bioimageio.spec`` package (``pip install
"napari-unetseg[zoo]"``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..inference.package import CONFIG_KEY

#: Side of the test tensors, a multiple of every encoder's total stride used here.
TEST_SIZE = 256
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "fluorescence_nuclei.png"


def _require_spec():
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise ImportError("bioimage.io packages need the bioimageio.spec package: "
                          'pip install "napari-unetseg[zoo]"') from None


def _test_tensors(model, image: np.ndarray):
    """(input (1, C, S, S) float32, output (1, K, S, S) float32) from the image's centre."""
    import torch

    from ..base.normalize import as_plane, normalize_plane

    plane = as_plane(image).astype(np.float32)
    h, w = plane.shape[:2]
    if min(h, w) < TEST_SIZE:
        raise ValueError(f"the test image must be at least {TEST_SIZE}x{TEST_SIZE} pixels, "
                         f"got {h}x{w}")
    y0, x0 = (h - TEST_SIZE) // 2, (w - TEST_SIZE) // 2
    crop = plane[y0 : y0 + TEST_SIZE, x0 : x0 + TEST_SIZE]
    channels = int(model.normalization["channels"])
    raw = np.broadcast_to(crop.mean(-1, keepdims=True) if crop.shape[-1] != channels else crop,
                          (*crop.shape[:2], channels))
    x = np.ascontiguousarray(np.moveaxis(raw, -1, 0)[None], np.float32)
    with torch.no_grad():
        p = model.probabilities(model(torch.from_numpy(normalize_plane(raw, model.normalization))
                                      [None])).numpy()
    return x, np.ascontiguousarray(p, np.float32)


def _weights(model, x: np.ndarray, folder: Path) -> dict:
    """ONNX and TorchScript files of the model with its activation; {format: path}."""
    import torch

    from ..inference.runtime import export_onnx, probability_module

    onnx_path = folder / "weights.onnx"
    onnx_path.write_bytes(export_onnx(model))
    ts_path = folder / "weights_torchscript.pt"
    module = probability_module(model).cpu().eval()
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.from_numpy(x), check_trace=False)
    traced.save(str(ts_path))
    return {"onnx": onnx_path, "torchscript": ts_path}


def _cover(image: np.ndarray, maps: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """Input, maps and labels side by side (PNG)."""
    import imageio.v3 as iio
    from skimage.color import label2rgb

    from ..base.normalize import normalize_plane

    gray = normalize_plane(image)[0].clip(0, 1)
    panels = [np.dstack([gray] * 3),
              np.dstack([maps[0], maps[1] if maps.shape[0] > 1 else maps[0], gray]).clip(0, 1),
              label2rgb(labels, gray, alpha=0.4, bg_label=0)]
    iio.imwrite(path, (np.hstack(panels) * 255).astype(np.uint8))
    return path


def _documentation(model, info: dict) -> str:
    from ..base.modes import target_mode

    mode = target_mode(model.targets)
    t = model.thresholds
    size = (f"Nuclei should be about {model.diameter:g} px across: resize the image by "
            f"{model.diameter:g} / (its median nucleus diameter) first (napari-unetseg "
            "estimates that diameter automatically)." if model.diameter else
            "Nuclei should have about the size they had in the training images.")
    trained_on = (info.get("provenance") or {}).get("training_data")
    data = f" on {trained_on}" if trained_on else ""
    return f"""# Nucleus segmentation (napari-unetseg, U-Net)

Trained with napari-unetseg{data}. Input: a 2D image with {model.normalization['channels']}
channels (a gray image repeated in each channel), scaled between its {model.normalization['low']}th
and {model.normalization['high']}th percentile over all channels. Images with dark nuclei on a
bright background (bright-field, stained tissue) must be inverted first (1 - x after the
scaling); napari-unetseg does so when the median lies above the middle of that range.

{size}

Output: probability maps {', '.join(mode.map_names)} ({mode.activation}).

Instances come from a seeded watershed: foreground where the first map exceeds
{t['mask_threshold']}, seeds where {mode.seed_description} exceeds {t['seed_threshold']}
(connected components), flooded over the negative seed map within the foreground; objects
under {t['min_size']} px (at the network's scale) are dropped.

In napari-unetseg: `unetseg predict --model this_package.zip images/ --out labels/`.
"""


def _tensor_descrs(net, n_in: int, folder: Path):
    """The input (with the percentile scaling) and output tensor descriptions."""
    import bioimageio.spec.model.v0_5 as s

    from ..base.modes import target_mode

    mode = target_mode(net.targets)
    size = s.ParameterizedSize(min=2 * net.total_stride, step=net.total_stride)
    inp = s.InputTensorDescr(
        id=s.TensorId("raw"),
        axes=[s.BatchAxis(),
              s.ChannelAxis(channel_names=[s.Identifier(f"channel{i}")
                                           for i in range(n_in)]),
              s.SpaceInputAxis(id=s.AxisId("y"), size=size),
              s.SpaceInputAxis(id=s.AxisId("x"), size=size)],
        test_tensor=s.FileDescr(source=folder / "test_input.npy"),
        preprocessing=[s.ScaleRangeDescr(kwargs=s.ScaleRangeKwargs(
            axes=[s.AxisId("channel"), s.AxisId("y"), s.AxisId("x")],
            min_percentile=float(net.normalization["low"]),
            max_percentile=float(net.normalization["high"])))],
        data=s.IntervalOrRatioDataDescr(type="float32"))
    outp = s.OutputTensorDescr(
        id=s.TensorId("probabilities"),
        axes=[s.BatchAxis(),
              s.ChannelAxis(channel_names=[s.Identifier(n.replace(" ", "_"))
                                           for n in mode.map_names]),
              s.SpaceOutputAxis(id=s.AxisId("y"), size=s.SizeReference(
                  tensor_id=s.TensorId("raw"), axis_id=s.AxisId("y"))),
              s.SpaceOutputAxis(id=s.AxisId("x"), size=s.SizeReference(
                  tensor_id=s.TensorId("raw"), axis_id=s.AxisId("x")))],
        test_tensor=s.FileDescr(source=folder / "test_output.npy"),
        data=s.IntervalOrRatioDataDescr(type="float32"))
    return inp, outp


def _int8_attachment(checkpoint, folder: Path):
    """([the int8 ONNX file as an attachment], config entry): the faster CPU version, which
    napari-unetseg runs on import; none when the checkpoint has no current one."""
    import bioimageio.spec.model.v0_5 as s

    from ..inference.runtime import int8_file_for

    int8 = int8_file_for(checkpoint, required=False)
    if int8 is None:
        return [], {}
    (folder / "weights.int8.onnx").write_bytes(Path(int8).read_bytes())
    return [s.FileDescr(source=folder / "weights.int8.onnx")], {"int8": "weights.int8.onnx"}


def export_bioimageio(model="default", out: str | Path = "model.zip", *,
                      image: np.ndarray | None = None, name: str | None = None,
                      authors: list[str] | None = None, trust_code: bool = False) -> Path:
    """Write a model as a bioimage.io package (model spec 0.5, zip).

    Parameters
    ----------
    model : str or Path
        A checkpoint, or ``"default"``.
    out : str or Path
        The zip to write; an existing file is never overwritten.
    image : ndarray, optional
        The image the test tensors and cover come from (dark background, at least
        ``TEST_SIZE`` pixels a side); the fluorescence sample by default.
    name : str, optional
        The model's name in the zoo.
    authors : list of str, optional
        Author names; otherwise the bundled model's makers, or the user exporting.
    trust_code : bool
        As for :func:`.checkpoint.load_checkpoint`.

    Returns
    -------
    Path
        The package.
    """
    _require_spec()
    from bioimageio.spec import save_bioimageio_package

    from ..base.normalize import plane_scaling
    from ..io.images import read_image
    from ..network.checkpoint import load_checkpoint

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another name (nothing is overwritten)")
    net, info = load_checkpoint(model, trust_code=trust_code)
    net.eval()
    image = read_image(SAMPLE) if image is None else np.asarray(image)
    if plane_scaling(image, net.normalization).invert:
        raise ValueError("the test image has a bright background, which the package's "
                         "preprocessing cannot invert; give a fluorescence-like image")
    with tempfile.TemporaryDirectory() as tmp:
        files = _package_files(net, info, model, image, Path(tmp))
        save_bioimageio_package(_model_descr(net, info, model, files, name, authors),
                                output_path=out)
    return out


def _package_files(net, info: dict, model, image: np.ndarray, folder: Path) -> dict:
    """Test tensors, weights, int8 attachment, cover and documentation, written to folder."""
    from ..instances.postprocess import SeededWatershed

    x, p = _test_tensors(net, image)
    np.save(folder / "test_input.npy", x)
    np.save(folder / "test_output.npy", p)
    files = _weights(net, x, folder)
    files["attachments"], files["config"] = _int8_attachment(info.get("path") or model, folder)
    labels = SeededWatershed(p[0], net.targets).labels(
        *[net.thresholds[k] for k in ("mask_threshold", "seed_threshold", "min_size")])
    files["cover"] = _cover(np.moveaxis(x[0], 0, -1), p[0], labels, folder / "cover.png")
    files["doc"] = folder / "README.md"
    files["doc"].write_text(_documentation(net, info))
    files["tensors"] = _tensor_descrs(net, x.shape[1], folder)
    return files


def _authors(given, model) -> list[str]:
    """Given names; else the bundled model's makers, or the user who exports a model."""
    import getpass

    if given:
        return list(given)
    if str(model) == "default":
        return ["napari-unetseg developers"]
    try:
        return [getpass.getuser()]
    except (KeyError, OSError):  # no user name on this system
        return ["napari-unetseg user"]


def _citations(s, provenance: dict) -> list:
    """U-Net, and the 2018 Data Science Bowl when the model learned from it."""
    cites = [s.CiteEntry(text="Ronneberger et al. U-Net: Convolutional Networks for "
                              "Biomedical Image Segmentation. MICCAI 2015",
                         doi=s.Doi("10.1007/978-3-319-24574-4_28"))]
    learned = " ".join(str(provenance.get(k, "")) for k in ("training_data", "base_model"))
    if "Data Science Bowl" in learned or "default" in learned:
        cites.append(s.CiteEntry(text="Caicedo et al. Nucleus segmentation across imaging "
                                      "experiments: the 2018 Data Science Bowl. Nature "
                                      "Methods 2019", doi=s.Doi("10.1038/s41592-019-0612-7")))
    return cites


def _model_descr(net, info: dict, model, files: dict, name, authors):
    import bioimageio.spec.model.v0_5 as s
    import torch

    provenance = info.get("provenance") or {}
    trained_on = provenance.get("training_data")
    base = provenance.get("base_model")
    if base:
        trained_on = (f"fine-tuned from {Path(str(base)).name} on "
                      f"{len(provenance.get('images_used') or [])} corrected image(s)")
    inp, outp = files["tensors"]
    return s.ModelDescr(
        name=name or f"napari-unetseg {Path(str(info.get('path') or model)).stem}",
        description="U-Net nucleus segmentation maps (napari-unetseg): foreground and "
                    "boundaries, made instances by a seeded watershed"
                    + (f". Trained on: {trained_on}" if trained_on else ""),
        authors=[s.Author(name=n) for n in _authors(authors, model)],
        cite=_citations(s, provenance),
        license=s.LicenseId("BSD-3-Clause"),
        documentation=s.FileDescr(source=files["doc"]),
        covers=[s.FileDescr(source=files["cover"])],
        tags=["nuclei", "instance-segmentation", "unet", "napari-unetseg", "2d"],
        inputs=[inp], outputs=[outp],
        weights=s.WeightsDescr(
            onnx=s.OnnxWeightsDescr(source=files["onnx"], opset_version=17),
            torchscript=s.TorchscriptWeightsDescr(
                source=files["torchscript"],
                pytorch_version=s.Version(torch.__version__.split("+")[0]))),
        attachments=files["attachments"],
        config={CONFIG_KEY: {"targets": net.targets, "thresholds": dict(net.thresholds),
                             "diameter": net.diameter, "normalization": dict(net.normalization),
                             "provenance": provenance, **files["config"]}},
    )
