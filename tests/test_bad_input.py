"""Bad input and unsafe files: a one-line error, exit status 2, nothing written or lost."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_unetseg.core import CheckpointError, load_checkpoint
from tests.conftest import SAMPLES


def unetseg(*args):
    return subprocess.run([sys.executable, "-m", "napari_unetseg.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def one_line_error(run, *words):
    assert run.returncode == 2, (run.returncode, run.stderr[-800:])
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    for w in words:
        assert w in last, last
    return last


def crafted(tiny_model_path, path, **changes):
    """A copy of a real checkpoint with parts of its payload replaced."""
    payload = torch.load(tiny_model_path, weights_only=True)
    for key, value in changes.items():
        if value is KeyError:
            payload.pop(key)
        elif isinstance(value, dict) and isinstance(payload.get(key), dict):
            payload[key] = {**payload[key], **value}
        else:
            payload[key] = value
    torch.save(payload, path)
    return path


# ------------------------------------------------------------------ security


def test_a_checkpoint_never_runs_code_it_names(tmp_path, tiny_model_path):
    marker = tmp_path / "pwned"
    bad = crafted(tiny_model_path, tmp_path / "evil.pt",
                  config={"encoder": "module:os:system",
                          "encoder_kwargs": {"command": f"touch {marker}"}})
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_checkpoint(bad)
    img = tmp_path / "img.png"
    img.write_bytes((SAMPLES / "tissue_stained.png").read_bytes())
    for cmd in (("predict", img, "--out", tmp_path / "o", "--model", bad),
                ("train", "--images", tmp_path, "--labels", tmp_path, "--init", bad,
                 "--epochs", "1", "--out", tmp_path / "m.pt"),
                ("quantize", bad, "--images", tmp_path)):
        one_line_error(unetseg(*cmd), "refused for safety", "--trust-code")
    assert not marker.exists()
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "o" / "img.tif").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_files_read_beside_a_checkpoint_cannot_run_code(tmp_path, tiny_model_path):
    # The training state of --resume is read with weights_only too: pickled code is refused.
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("never",))

    model = tmp_path / "m.pt"
    model.write_bytes(tiny_model_path.read_bytes())
    (tmp_path / "m.pt.resume.pt").write_bytes(pickle.dumps(Boom()))
    from napari_unetseg.core.training.train import TrainConfig, train

    with pytest.raises(CheckpointError, match="not a training state"):
        train(TrainConfig(epochs=1), [], [], tmp_path / "out.pt", resume=model)


@pytest.mark.parametrize(("change", "words"), [
    ({"config": {"encoder_kwargs": {"depth": 100, "base_width": 1}}}, "depth = 100"),
    ({"config": {"in_channels": 0}}, "in_channels = 0"),
    ({"config": {"encoder": "timm:resnet18",
                 "encoder_kwargs": {"checkpoint_path": "/etc/passwd"}}}, "checkpoint_path"),
    ({"thresholds": {"mask_threshold": float("nan")}}, "mask_threshold"),
    ({"thresholds": {"min_size": "big"}}, "min_size"),
    ({"state_dict": KeyError}, "no weights"),
    ({"state_dict": {"a": 1}}, "no weights"),
    ({"config": KeyError}, "no model configuration"),
    ({"normalization": KeyError}, "no normalization"),
    ({"diameter": -3.0}, "diameter"),
])
def test_damaged_or_hostile_checkpoints_are_refused_in_one_line(tmp_path, tiny_model_path,
                                                               change, words):
    bad = crafted(tiny_model_path, tmp_path / "bad.pt", **change)
    with pytest.raises(CheckpointError, match=words.split()[0]):
        load_checkpoint(bad)


# ------------------------------------------------------------------ data loss


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for name in ("tissue_stained", "fluorescence_nuclei"):
        (d / f"{name}.png").write_bytes((SAMPLES / f"{name}.png").read_bytes())
    return d


def test_predict_into_its_own_image_folder_is_refused(image_dir, tiny_model_path):
    # Same stems as TIFF images in the input folder: labels would replace them.
    tifffile.imwrite(image_dir / "cells.tif", np.zeros((64, 64), np.uint8))
    before = (image_dir / "cells.tif").read_bytes()
    run = unetseg("predict", image_dir, "--out", image_dir, "--overwrite", "--model",
                  tiny_model_path)
    one_line_error(run, "input image", "replaced")
    assert (image_dir / "cells.tif").read_bytes() == before


def test_two_inputs_with_one_stem_are_refused(image_dir, tiny_model_path, tmp_path):
    tifffile.imwrite(image_dir / "tissue_stained.tif", np.zeros((64, 64), np.uint8))
    run = unetseg("predict", image_dir, "--out", tmp_path / "out", "--model", tiny_model_path)
    one_line_error(run, "both be written")
    assert not list((tmp_path / "out").glob("*.tif")) if (tmp_path / "out").exists() else True


def test_overwrite_replaces_label_files_only(image_dir, tiny_model_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tissue_stained.tif").write_bytes((SAMPLES / "tissue_stained.png").read_bytes())
    before = (out / "tissue_stained.tif").read_bytes()
    run = unetseg("predict", image_dir / "tissue_stained.png", "--out", out, "--overwrite",
                  "--model", tiny_model_path, "--quiet")
    assert run.returncode == 1 and "not replaced" in run.stderr
    assert (out / "tissue_stained.tif").read_bytes() == before


def test_evaluate_never_writes_its_csv_over_other_files(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "a.tif").write_bytes((SAMPLES / "labels" / "tissue_stained.tif").read_bytes())
    before = (gt / "a.tif").read_bytes()
    one_line_error(unetseg("evaluate", "--gt", gt, "--pred", gt, "--csv", gt / "a.tif"),
                   "exists")
    assert (gt / "a.tif").read_bytes() == before


def test_train_never_replaces_an_existing_file(tmp_path):
    out = tmp_path / "model.pt"
    out.write_text("precious")
    run = unetseg("train", "--images", tmp_path, "--labels", tmp_path, "--epochs", "1",
                  "--out", out)
    one_line_error(run, "exists")
    assert out.read_text() == "precious"


@pytest.mark.parametrize("args", [("--time-budget", "-5"), ("--epochs", "0"),
                                  ("--epochs", "-1"), ("--val-list", "missing.txt")])
def test_train_options_that_would_never_stop_are_refused(tmp_path, args):
    run = unetseg("train", "--images", tmp_path, "--labels", tmp_path, "--out",
                  tmp_path / "m.pt", *args)
    one_line_error(run)


@pytest.mark.parametrize("args", [("--mask-threshold", "nan"), ("--seed-threshold", "1.5"),
                                  ("--min-size", "-1"), ("--diameter", "huge")])
def test_predict_refuses_bad_thresholds_before_loading_a_model(image_dir, tmp_path, args):
    run = unetseg("predict", image_dir, "--out", tmp_path / "o", "--model", "default", *args)
    one_line_error(run)
    assert "model default on" not in run.stderr  # the model was not loaded


def test_predict_checks_inputs_before_loading_the_model(tmp_path):
    run = unetseg("predict", tmp_path / "missing.png", "--out", tmp_path / "o")
    one_line_error(run, "file not found")
    assert "model default on" not in run.stderr


def test_predict_into_a_file_is_refused(image_dir, tmp_path, tiny_model_path):
    (tmp_path / "f").write_text("x")
    one_line_error(unetseg("predict", image_dir, "--out", tmp_path / "f", "--model",
                           tiny_model_path), "is a file")


# ------------------------------------------------------------------ wrong results


def test_label_ids_beyond_32_bits_are_written_without_wrapping(tmp_path):
    from napari_unetseg.core.io.images import read_labels, write_label_tiff

    labels = np.zeros((8, 8), np.uint64)
    labels[0, 0], labels[4, 4] = 2**32 + 5, 7
    with pytest.warns(UserWarning):
        write_label_tiff(tmp_path / "big.tif", labels)
    back = read_labels(tmp_path / "big.tif")
    assert int(back[0, 0]) == 2**32 + 5 and int(back[4, 4]) == 7


def test_watershed_and_predict_refuse_misread_shapes():
    from napari_unetseg.core import predict, watershed_from_maps

    maps = np.random.default_rng(0).random((2, 32, 32), np.float32)
    with pytest.raises(ValueError, match="channels last"):
        watershed_from_maps(np.moveaxis(maps, 0, -1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        watershed_from_maps(maps, mask_threshold=float("nan"))
    with pytest.raises(ValueError, match="5 channels"):
        predict("default", np.zeros((64, 64, 5), np.uint8))


def test_a_complex_tiff_is_reported_and_the_batch_goes_on(image_dir, tmp_path,
                                                          tiny_model_path):
    tifffile.imwrite(image_dir / "complex.tif", np.ones((64, 64), np.complex64))
    run = unetseg("predict", image_dir, "--out", tmp_path / "o", "--model", tiny_model_path,
                  "--quiet")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "complex64 are not supported" in run.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "fluorescence_nuclei.tif", "tissue_stained.tif"]


def test_int8_asked_for_with_a_broken_file_is_an_error(image_dir, tmp_path, tiny_model_path):
    model = tmp_path / "m.pt"
    model.write_bytes(tiny_model_path.read_bytes())
    (tmp_path / "m.int8.onnx").write_bytes(b"")
    run = unetseg("predict", image_dir, "--out", tmp_path / "o", "--model", model,
                  "--precision", "int8")
    one_line_error(run, "m.int8.onnx")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_pixels_without_a_value_are_background():
    from napari_unetseg.core.base.normalize import normalize_plane

    plane = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    plane[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    x = normalize_plane(plane)
    assert np.isfinite(x).all() and (x[:, 0, :4] == 0).all()
    bright = 1 - plane  # a bright background is inverted: still 0 where there is no value
    bright[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    assert (normalize_plane(bright)[:, 0, :4] == 0).all()


def test_api_refuses_a_zero_batch_and_object_arrays():
    from napari_unetseg.core import predict

    image = np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)
    with pytest.raises(ValueError, match="batch_size"):
        predict("default", image, batch_size=0)
    with pytest.raises(ValueError, match="object"):
        predict("default", image.astype(object))


def test_evaluate_names_the_file_on_shape_mismatch_and_refuses_negative_truth(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    tifffile.imwrite(gt / "a.tif", np.zeros((32, 32), np.int32))
    tifffile.imwrite(pred / "a.tif", np.zeros((16, 16), np.uint16))
    one_line_error(unetseg("evaluate", "--gt", gt, "--pred", pred), "a.tif", "differs")
    neg = np.zeros((16, 16), np.int32)
    neg[2:5, 2:5] = -3
    tifffile.imwrite(gt / "a.tif", neg)
    one_line_error(unetseg("evaluate", "--gt", gt, "--pred", pred), "negative")


@pytest.mark.filterwarnings("ignore:.*zero-size array")
def test_an_empty_tiff_is_one_line_and_the_batch_goes_on(image_dir, tmp_path,
                                                          tiny_model_path):
    (image_dir / "empty.tif").write_bytes(b"")
    tifffile.imwrite(image_dir / "zero.tif", np.zeros((0, 0), np.uint8))
    run = unetseg("predict", image_dir, "--out", tmp_path / "o", "--model", tiny_model_path,
                  "--quiet")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "2 of 4 input(s) failed" in run.stderr
    assert len(list((tmp_path / "o").glob("*.tif"))) == 2


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(image_dir,
                                                                         tmp_path):
    # (A read-only folder cannot be tested as root, who may write anywhere.)
    (tmp_path / "file").write_text("x")
    run = unetseg("predict", image_dir, "--out", tmp_path / "file" / "sub")
    one_line_error(run, "cannot create --out folder")
    assert "model default on" not in run.stderr


def test_a_failed_maps_write_leaves_no_truncated_file(tmp_path, monkeypatch):
    # Disk full or Ctrl-C in the middle of writing: no partial _maps.tif that a rerun
    # would take for a finished one.
    import tifffile as tf

    from napari_unetseg.core.io import writers

    def fail_midway(path, *a, **k):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf, "imwrite", fail_midway)
    with pytest.raises(OSError):
        writers.write_maps(tmp_path / "x_maps.tif", np.zeros((2, 8, 8), np.float32), "YX", False)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line(image_dir, tmp_path, tiny_model_path, monkeypatch, capsys):
    from napari_unetseg import cli
    from napari_unetseg.core.io import images as io

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "write_label_tiff", full)
    code = cli.main(["predict", str(image_dir), "--out", str(tmp_path / "o"), "--model",
                     str(tiny_model_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err.strip().splitlines()[-1]


def test_predicting_a_folder_skips_label_files_and_evaluate_spots_mixed_folders(
        tmp_path, tiny_model_path):
    import shutil

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(SAMPLES / "tissue_stained.png", folder)
    out = tmp_path / "o"
    assert unetseg("predict", folder, "--out", out, "--model", tiny_model_path,
                   "--quiet").returncode == 0
    # The label file it wrote sits in the image folder now (as if predicted in place).
    shutil.copy(out / "tissue_stained.tif", folder / "tissue_stained_seg.tif")
    run = unetseg("predict", folder, "--out", tmp_path / "o2", "--model", tiny_model_path,
                  "--quiet")
    assert run.returncode == 0 and "skipping 1 label file" in run.stderr
    assert [p.name for p in (tmp_path / "o2").iterdir()] == ["tissue_stained.tif"]
    # Predictions for images without ground truth: the wrong folders were given.
    gt = tmp_path / "gt"
    gt.mkdir()
    shutil.copy(SAMPLES / "labels" / "fluorescence_nuclei.tif", gt)
    one_line_error(unetseg("evaluate", "--gt", gt, "--pred", out), "no ground truth")


# ------------------------------------------------------------------ round 3 (issue 28)
# Each case: what a user typed -> the outcome. "2": one line naming the problem, exit 2,
# before any work; "1": that input failed in one line, the batch went on.


@pytest.fixture
def stack_tif(tmp_path):
    image = tifffile.imread(SAMPLES / "nuclei_3d.tif")[:4]
    path = tmp_path / "zstack.tif"
    tifffile.imwrite(path, image, imagej=True, metadata={"axes": "ZYX"})
    return path


def read_sample(name):
    from napari_unetseg.core.io.images import read_image

    return read_image(SAMPLES / f"{name}.png")


def test_maps_of_a_z_stack_are_written_and_a_rerun_writes_missing_maps(
        tmp_path, tiny_model_path, stack_tif):
    out = tmp_path / "out"
    r = unetseg("predict", stack_tif, "--out", out, "--model", tiny_model_path, "--quiet")
    assert r.returncode == 0, r.stderr
    assert not (out / "zstack_maps.tif").exists()
    # The maps were asked for later (or a Ctrl+C came between labels and maps): a rerun
    # writes them instead of skipping the image.
    r = unetseg("predict", stack_tif, "--out", out, "--model", tiny_model_path, "--quiet",
                "--save-maps")
    assert r.returncode == 0, r.stderr
    maps = tifffile.imread(out / "zstack_maps.tif")
    assert maps.shape[0] == 4 and "0 skipped" in r.stderr
    r = unetseg("predict", stack_tif, "--out", out, "--model", tiny_model_path, "--quiet",
                "--save-maps")
    assert r.returncode == 0 and "1 skipped" in r.stderr


@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
def test_an_unfinished_ome_zarr_run_is_finished_by_a_rerun(tmp_path, tiny_model_path):
    zarr = pytest.importorskip("zarr")
    from napari_unetseg.core.io.writers import zarr_labels_complete

    image_path = tmp_path / "img.zarr"
    _ome(image_path, read_sample("tissue_stained")[..., 0], "yx")
    # What a killed run leaves: the labels group without its metadata.
    zarr.open_group(str(image_path / "labels" / "unetseg"), mode="w").create_array(
        "0", shape=(256, 320), dtype="uint32")
    assert not zarr_labels_complete(image_path)
    r = unetseg("predict", image_path, "--out", tmp_path / "o", "--model", tiny_model_path,
                "--quiet")
    assert r.returncode == 0 and "1 written" in r.stderr, r.stderr
    assert zarr_labels_complete(image_path)


def _ome(path, data, axes):
    import zarr
    from ome_zarr.writer import write_image

    write_image(data, zarr.open_group(str(path), mode="w"), axes=axes, scale_factors=())


@pytest.mark.parametrize(("case", "args", "words"), [
    ("Z step 1000x the pixel", ("--voxel-size", "1000,1,1"), ["1e+03 times"]),
    ("absurd voxel size", ("--voxel-size", "1e300,1,1"), ["times the pixel size"]),
    ("huge block", ("--block", "100000"), ["--block must be"]),
    ("block on a PNG", ("--block", "256"), ["TIFF and OME-Zarr", "img.png"]),
    ("scheduler not running", ("--scheduler", "tcp://127.0.0.1:1"),
     ["cannot reach the Dask scheduler"]),
    ("300-character --out", ("--out-name", "x" * 300), ["longer than 255"]),
    ("abbreviated option", ("--tru",), ["unrecognized arguments"]),
    ("channel 0", ("--channel", "0"), ["counts from 1"]),
])
def test_predict_refuses_impossible_requests_in_one_line(tmp_path, tiny_model_path, case,
                                                          args, words):
    img = tmp_path / "img.png"
    img.write_bytes((SAMPLES / "tissue_stained.png").read_bytes())
    out = tmp_path / "out"
    if args[0] == "--out-name":
        out, args = tmp_path / args[1], ()
    r = unetseg("predict", img, "--out", out, "--model", tiny_model_path, *args)
    assert r.returncode == 2, (case, r.returncode, r.stderr[-600:])
    assert "Traceback" not in r.stderr, case
    last = r.stderr.strip().splitlines()[-1]
    for w in words:
        assert w in last, (case, last)
    assert not (tmp_path / "out" / "img.tif").exists()


@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
@pytest.mark.parametrize(("case", "make", "words"), [
    ("5 channels stored as 256 pages", lambda p: tifffile.imwrite(
        p / "five.tif", np.zeros((256, 256, 5), np.uint8)), ["5 channels"]),
    ("empty OME-Zarr group", lambda p: __import__("zarr").open_group(
        str(p / "empty.zarr"), mode="w"), ["no OME-Zarr multiscales"]),
    ("plain Zarr array", lambda p: __import__("zarr").open_array(
        str(p / "plain.zarr"), mode="w", shape=(64, 64), dtype="uint8"), ["plain Zarr array"]),
    ("OME-Zarr declared zyx", lambda p: _ome(p / "zyx.zarr", np.zeros((300, 400, 3), np.uint8),
                                             "zyx"), ["axes zyx"]),
])
def test_misread_or_malformed_inputs_fail_in_one_line(tmp_path, tiny_model_path, case, make,
                                                     words):
    pytest.importorskip("zarr")
    inputs = tmp_path / "in"
    inputs.mkdir()
    make(inputs)
    target = next(inputs.iterdir())
    r = unetseg("predict", target, "--out", tmp_path / "out", "--model", tiny_model_path,
                "--quiet")
    assert r.returncode == 1, (case, r.stderr[-600:])
    assert "Traceback" not in r.stderr, case
    assert any(all(w in line for w in words) for line in r.stderr.splitlines()), (case,
                                                                                 r.stderr)
    assert not (tmp_path / "out" / f"{target.stem}.tif").exists()


@pytest.mark.parametrize(("case", "attrs", "words"), [
    ("dataset path is a group", {"multiscales": [{"datasets": [{"path": "g"}]}]},
     ["missing or not an array"]),
    ("dangling dataset path", {"multiscales": [{"datasets": [{"path": "nowhere"}]}]},
     ["missing or not an array"]),
    ("multiscales a string", {"multiscales": "oops"}, ["damaged OME-Zarr"]),
])
def test_damaged_ome_zarr_metadata_is_one_line(tmp_path, tiny_model_path, case, attrs, words):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "bad.zarr"
    group = zarr.open_group(str(path), mode="w")
    group.require_group("g")
    group.attrs.update(attrs)
    r = unetseg("predict", path, "--out", tmp_path / "out", "--model", tiny_model_path,
                "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stderr, (case, r.stderr[-500:])
    assert any(all(w in line for w in words) for line in r.stderr.splitlines()), r.stderr


@pytest.mark.parametrize(("case", "args", "words"), [
    ("batch of 0", ("--batch-size", "0"), ["--batch-size must be 1 or more"]),
    ("negative epoch images", ("--epoch-images", "-5"), ["--epoch-images must be 1"]),
    ("negative canonical diameter", ("--canonical-diameter", "-5"), ["canonical-diameter"]),
])
def test_train_refuses_settings_that_cannot_train(tmp_path, case, args, words):
    images, labels = tmp_path / "i", tmp_path / "l"
    images.mkdir()
    labels.mkdir()
    (images / "a.png").write_bytes((SAMPLES / "tissue_stained.png").read_bytes())
    (labels / "a.tif").write_bytes((SAMPLES / "labels" / "tissue_stained.tif").read_bytes())
    r = unetseg("train", "--images", images, "--labels", labels, "--epochs", "1", "--out",
                tmp_path / "m.pt", *args)
    one_line_error(r, *words)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(("case", "labels", "words"), [
    ("negative ids", np.full((256, 320), -3, np.int16), ["negative ids"]),
    ("no object anywhere", np.zeros((256, 320), np.uint16), ["has an object"]),
])
def test_training_refuses_labels_it_cannot_learn_from(tmp_path, case, labels, words):
    images, folder = tmp_path / "i", tmp_path / "l"
    images.mkdir()
    folder.mkdir()
    (images / "a.png").write_bytes((SAMPLES / "tissue_stained.png").read_bytes())
    tifffile.imwrite(folder / "a.tif", labels)
    r = unetseg("train", "--images", images, "--labels", folder, "--epochs", "1", "--out",
                tmp_path / "m.pt")
    one_line_error(r, *words)
    assert not (tmp_path / "m.pt").exists()


def test_outputs_are_never_written_over_other_files(tmp_path, tiny_model_path):
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"a picture the user keeps")
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.png").write_bytes((SAMPLES / "tissue_stained.png").read_bytes())
    one_line_error(unetseg("quantize", tiny_model_path, "--images", images, "--out", victim),
                   ".onnx")
    assert victim.read_bytes() == b"a picture the user keeps"
    # evaluate --csv into a folder that does not exist: refused before the evaluation.
    one_line_error(unetseg("evaluate", "--gt", images, "--pred", images, "--csv",
                           tmp_path / "nowhere" / "scores.csv"), "does not exist")
    # Zarr labels are never written over a folder that is not a Zarr array (Zarr's "w"
    # mode would empty it first).
    from napari_unetseg.core.io.writers import _array_to_write

    keep = tmp_path / "my_folder"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Zarr labels array"):
        _array_to_write(None, str(keep), {"shape": (4, 4)}, keep=False)
    assert (keep / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("case", "change", "words"), [
    ("min_size 1e9", {"thresholds": {"min_size": 1e9}}, ["min_size"]),
    ("unknown normalization", {"normalization": {"kind": "evil"}}, ["normalization"]),
    ("7 input channels", {"normalization": {"channels": 7}}, ["input channels"]),
    ("4 x 512 U-Net", {"config": {"encoder_kwargs": {"depth": 4, "base_width": 512},
                                  "decoder_channels": None}},
     ["million parameters"]),
])
def test_checkpoints_beyond_what_can_run_are_refused_before_building(
        tmp_path, tiny_model_path, case, change, words):
    bad = crafted(tiny_model_path, tmp_path / "bad.pt", **change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    for w in words:
        assert w in str(info.value), (case, str(info.value))


def test_empty_arrays_and_sparse_ids_and_closed_pipes():
    from napari_unetseg.core.inference.predictor import check_axes
    from napari_unetseg.core.io.export import object_table

    with pytest.raises(ValueError, match="empty"):
        check_axes((0, 0), None)
    labels = np.zeros((64, 64), np.uint64)
    labels[5:9, 5:9] = 2**32 + 5
    (row,) = object_table(labels)
    assert row["label"] == 2**32 + 5 and row["area"] == 16
    # `unetseg info default | head -1`: the closed pipe is no traceback.
    proc = subprocess.Popen([sys.executable, "-m", "napari_unetseg.cli", "info", "default"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_resume_state_with_negative_time_still_ends(tmp_path):
    from napari_unetseg.core.training.train import train
    from tests.core.test_train import _pairs, _tiny_config

    tr, va = _pairs(tmp_path)
    train(_tiny_config(epochs=1), tr, va, tmp_path / "m.pt", show_progress=False)
    state = torch.load(tmp_path / "m.pt.resume.pt", weights_only=True)
    state["elapsed"] = -1e9
    torch.save(state, tmp_path / "m.pt.resume.pt")
    summary = train(_tiny_config(time_budget_min=0.02), tr, va, tmp_path / "m.pt",
                    resume=tmp_path / "m.pt", show_progress=False)
    assert summary["seconds"] < 60


def test_a_full_disk_leaves_no_half_written_checkpoint(tmp_path, tiny_model_path, monkeypatch):
    from napari_unetseg.core.network.checkpoint import save_checkpoint

    model, _ = load_checkpoint(tiny_model_path)

    def full(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(model, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_layer_with_six_channels_last_is_refused(make_napari_viewer, monkeypatch):
    import napari.utils.notifications as notes

    from napari_unetseg.widgets.segment import SegmentWidget

    seen = []
    monkeypatch.setattr(notes, "show_error", seen.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64, 6), np.uint8), name="six")
    seg = SegmentWidget(viewer, autoload=False)
    seg.model_panel.predictor = object()  # never reached: the shape is refused first
    seg.form.image_picker.value = viewer.layers["six"]
    seg.run()
    assert not seg.busy and "6 channels" in seen[-1]
