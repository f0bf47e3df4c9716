"""BioImage Model Zoo packages: export (checked by bioimageio.core), import, round trip,
foreign packages and refusals, through the command line as users run it."""

import io
import zipfile

import numpy as np
import pytest
import tifffile
import yaml

from napari_unetseg.core.inference.package import PackageError, read_package
from tests.conftest import SAMPLES
from tests.test_cli import unetseg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled model exported with `unetseg export`, as the README writes it."""
    out = tmp_path_factory.mktemp("zoo") / "default_nuclei.zip"
    run = unetseg("export", "default", "--out", out)
    assert run.returncode == 0, run.stderr
    return out


def test_the_exported_bundled_model_passes_bioimageio_core_s_test(exported):
    from bioimageio.core import test_model

    summary = test_model(exported)
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details
              if d.status == "failed"]
    assert summary.status == "passed", failed
    names = set(zipfile.ZipFile(exported).namelist())
    assert {"rdf.yaml", "weights.onnx", "weights_torchscript.pt", "test_input.npy",
            "test_output.npy", "cover.png", "README.md", "weights.int8.onnx"} <= names
    rdf = yaml.safe_load(zipfile.ZipFile(exported).read("rdf.yaml"))
    ours = rdf["config"]["napari_unetseg"]
    assert ours["targets"] == "mask_border" and ours["diameter"] == 24.0
    assert ours["thresholds"]["seed_threshold"] == 0.7
    assert "Data Science Bowl" in rdf["description"]


def test_export_never_overwrites(exported):
    before = exported.stat().st_mtime_ns
    run = unetseg("export", "default", "--out", exported)
    assert run.returncode == 2 and "exists" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert exported.stat().st_mtime_ns == before


def test_round_trip_gives_the_same_maps_and_labels(exported, fluo):
    from napari_unetseg.core.inference.predictor import Predictor
    from napari_unetseg.core.run.pipeline import segment_image

    image, _ = fluo
    for precision in ("fp32", "auto"):  # auto: the int8 weights travel in the package
        ours, back = Predictor("default", "cpu", precision), Predictor(exported, "cpu", precision)
        assert back.backend == ours.backend
        assert np.abs(ours.predict(image) - back.predict(image)).max() <= 1e-4
        labels = segment_image(ours, image)
        assert labels.max() > 100 and np.array_equal(labels, segment_image(back, image))


def test_predict_with_the_package_gives_the_default_model_s_labels(exported, tmp_path):
    image = SAMPLES / "fluorescence_nuclei.png"
    for model, out in ((exported, tmp_path / "pkg"), ("default", tmp_path / "default")):
        run = unetseg("predict", image, "--model", model, "--out", out, "--quiet")
        assert run.returncode == 0, run.stderr
    a = tifffile.imread(tmp_path / "pkg" / "fluorescence_nuclei.tif")
    b = tifffile.imread(tmp_path / "default" / "fluorescence_nuclei.tif")
    assert a.max() > 100 and np.array_equal(a, b)


# ------------------------------------------------------------------ packages from elsewhere


def _blobs() -> tuple[np.ndarray, int]:
    yy, xx = np.mgrid[:192, :192]
    image = np.full((192, 192), 20, np.uint8)
    centres = [(40, 40), (40, 140), (100, 90), (150, 40), (150, 150)]
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 15**2] = 200
    return image, len(centres)


def _foreign_package(path, formats=("onnx", "torchscript"), rdf_edit=None):
    """A package written by hand: a 1x1 convolution giving (boundary, foreground) logits,
    with zero-mean/unit-variance preprocessing and a sigmoid declared after it."""
    import torch

    net = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        net.weight[:] = torch.tensor([[[[0.0]]], [[[6.0]]]])
        net.bias[:] = torch.tensor([-10.0, 0.0])
    x = torch.zeros(1, 1, 64, 64)
    files = {}
    if "onnx" in formats:
        buf = io.BytesIO()
        torch.onnx.export(net, (x,), buf, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "b", 2: "h", 3: "w"}}, opset_version=17,
                          dynamo=False)
        files["weights.onnx"] = buf.getvalue()
    if "torchscript" in formats:
        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(net, x), buf)
        files["model.pt"] = buf.getvalue()
    size = {"min": 16, "step": 16}
    rdf = {
        "type": "model", "format_version": "0.5.4", "name": "boundary model from elsewhere",
        "inputs": [{"id": "input", "axes": [
            {"type": "batch"}, {"type": "channel", "channel_names": ["gray"]},
            {"type": "space", "id": "y", "size": size}, {"type": "space", "id": "x", "size": size}],
            "preprocessing": [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}}]}],
        "outputs": [{"id": "output", "axes": [
            {"type": "batch"}, {"type": "channel", "channel_names": ["boundary", "foreground"]},
            {"type": "space", "id": "y", "size": {"tensor_id": "input", "axis_id": "y"}},
            {"type": "space", "id": "x", "size": {"tensor_id": "input", "axis_id": "x"}}],
            "postprocessing": [{"id": "sigmoid"}]}],
        "weights": {**({"onnx": {"source": "weights.onnx", "opset_version": 17}}
                       if "onnx" in formats else {}),
                    **({"torchscript": {"source": "model.pt", "pytorch_version": "2.0"}}
                       if "torchscript" in formats else {})},
    }
    if rdf_edit is not None:
        rdf_edit(rdf)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("rdf.yaml", yaml.safe_dump(rdf))
        for name, data in files.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("formats", [("onnx", "torchscript"), ("torchscript",)])
def test_a_foreground_boundary_package_from_elsewhere_segments(tmp_path, formats):
    from napari_unetseg.core.inference.predictor import Predictor
    from napari_unetseg.core.run.pipeline import segment_image

    package = _foreign_package(tmp_path / "foreign.zip", formats)
    model = read_package(package)
    assert model.targets == "mask_border" and model.channel_order == (1, 0)
    pred = Predictor(package, "cpu")
    assert pred.backend == ("onnxruntime" if "onnx" in formats else "torchscript")
    image, n = _blobs()
    maps = pred.predict(image)
    assert maps.shape == (2, 192, 192) and maps[0].max() > 0.9 and maps[1].max() < 0.01
    assert segment_image(pred, image).max() == n


def _one_line_refusal(package, *words):
    with pytest.raises(PackageError) as err:
        read_package(package)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


def test_packages_that_would_run_code_or_read_outside_are_refused(tmp_path, fluo):
    def python_architecture(rdf):
        rdf["weights"] = {"pytorch_state_dict": {
            "source": "weights.pt", "architecture": {"source": "model.py", "callable": "Net"}}}

    def remote(rdf):
        rdf["weights"] = {"onnx": {"source": "https://example.org/w.onnx", "opset_version": 17}}

    def unknown_outputs(rdf):
        rdf["outputs"][0]["axes"][1]["channel_names"] = ["flow_y", "flow_x"]

    _one_line_refusal(_foreign_package(tmp_path / "a.zip", (), python_architecture),
                      "refused", "Python code")
    _one_line_refusal(_foreign_package(tmp_path / "b.zip", ("onnx",), remote),
                      "inside the package")
    _one_line_refusal(_foreign_package(tmp_path / "c.zip", ("onnx",), unknown_outputs),
                      "flow_y", "foreground", "boundary")
    # Weights that are not what they claim (a pickle named .onnx): one line, nothing run.
    import pickle

    bad = tmp_path / "d.zip"
    with zipfile.ZipFile(_foreign_package(tmp_path / "d0.zip", ("onnx",))) as z:
        rdf = z.read("rdf.yaml")
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("rdf.yaml", rdf)
        z.writestr("weights.onnx", pickle.dumps({"x": 1}))
    run = unetseg("predict", SAMPLES / "fluorescence_nuclei.png", "--model", bad,
                  "--out", tmp_path / "out", "--quiet")
    assert run.returncode == 2 and "weights cannot be loaded" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    run = unetseg("predict", SAMPLES / "fluorescence_nuclei.png", "--model",
                  tmp_path / "a.zip", "--out", tmp_path / "out", "--quiet")
    assert run.returncode == 2 and "refused" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_folder_package_cannot_point_outside_its_folder(tmp_path):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (tmp_path / "secret.onnx").write_bytes(b"not yours")
    with zipfile.ZipFile(_foreign_package(tmp_path / "p.zip", ("onnx",))) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
    rdf["weights"]["onnx"]["source"] = "../secret.onnx"
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    _one_line_refusal(folder / "rdf.yaml", "not a file in its folder")


def test_a_declared_channel_mapping_makes_any_names_usable(tmp_path):
    from napari_unetseg.core.inference.predictor import Predictor
    from napari_unetseg.core.run.pipeline import segment_image

    def declared(rdf):
        rdf["outputs"][0]["axes"][1]["channel_names"] = ["c0", "c1"]
        rdf["config"] = {"napari_unetseg": {"output_channels": {"foreground": 1,
                                                                "boundary": 0}}}

    package = _foreign_package(tmp_path / "declared.zip", ("onnx",), declared)
    image, n = _blobs()
    assert segment_image(Predictor(package, "cpu"), image).max() == n
    _one_line_refusal(_foreign_package(tmp_path / "plain.zip", ("onnx",), lambda rdf: rdf[
        "outputs"][0]["axes"][1].update(channel_names=["c0", "c1"])), "output_channels")


def test_a_package_is_not_taken_for_a_checkpoint(exported, tmp_path):
    # Fine-tuning and quantizing start from checkpoints: one line says so.
    run = unetseg("quantize", exported, "--images", SAMPLES)
    assert run.returncode == 2 and "bioimage.io package, not a checkpoint" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    info = unetseg("info", exported)
    assert info.returncode == 0 and '"targets": "mask_border"' in info.stdout
