"""The `unetseg` command as users call it: real files on disk, exit codes, messages."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from tests.conftest import SAMPLES, SHARED


def unetseg(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "napari_unetseg.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_info_prints_json(tiny_model_path):
    out = unetseg("info", tiny_model_path)
    assert out.returncode == 0
    info = json.loads(out.stdout)
    assert info["config"]["encoder"] == "unet" and info["format_version"] == 1


def test_info_default_shows_provenance_and_scores():
    info = json.loads(unetseg("info", "default").stdout)
    val = info["provenance"]["validation"]
    assert val["mAP_50_95"] > 0.5 and val["AP50"] > 0.7
    assert info["provenance"]["training_images"] > 500


def test_info_errors_are_one_line_exit_2(tmp_path):
    (tmp_path / "bad.pt").write_text("nope")
    for arg in (tmp_path / "missing.pt", tmp_path / "bad.pt"):
        out = unetseg("info", arg)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_predict_folder_then_evaluate(tmp_path, tiny_model_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("fluorescence_nuclei", "tissue_stained"):
        shutil.copy(SAMPLES / f"{name}.png", images)
    (images / "broken.png").write_bytes(b"\x89PNG garbage")
    out_dir = tmp_path / "out"
    r = unetseg("predict", images, "--out", out_dir, "--model", tiny_model_path, "--quiet",
                "--save-maps", "--min-size", "0")
    # The broken file is reported on one line, the others are written, exit status 1.
    assert r.returncode == 1, r.stderr
    assert "broken.png" in r.stderr and "Traceback" not in r.stderr
    written = sorted(p.name for p in out_dir.glob("*.tif"))
    assert written == ["fluorescence_nuclei.tif", "fluorescence_nuclei_maps.tif",
                       "tissue_stained.tif", "tissue_stained_maps.tif"]
    with tifffile.TiffFile(out_dir / "tissue_stained.tif") as tif:
        assert tif.is_imagej and tif.series[0].shape == (256, 320)
    # Existing outputs are skipped without --overwrite.
    before = (out_dir / "tissue_stained.tif").stat().st_mtime_ns
    r = unetseg("predict", images / "tissue_stained.png", "--out", out_dir, "--model",
                tiny_model_path, "--quiet")
    assert r.returncode == 0 and "exists" in r.stderr
    assert (out_dir / "tissue_stained.tif").stat().st_mtime_ns == before
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("fluorescence_nuclei", "tissue_stained", "extra"):
        src = SAMPLES / "labels" / f"{'tissue_stained' if name == 'extra' else name}.tif"
        shutil.copy(src, gt / f"{name}.tif")
    r = unetseg("evaluate", "--gt", gt, "--pred", out_dir, "--csv", tmp_path / "s.csv")
    summary = json.loads(r.stdout)
    assert summary["images"] == 3 and summary["missing_predictions"] == 1
    # The random tiny model finds little, and the missing image scores 0: a third of the
    # images cannot lift the mean above 2/3.
    assert 0 <= summary["mAP_50_95"] < 0.67 and summary["AP50"] >= summary["mAP_50_95"]
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 4


def test_predict_stack_stays_a_stack(tmp_path, tiny_model_path):
    from napari_unetseg.core.io.images import read_image

    plane = read_image(SAMPLES / "tissue_stained.png")[..., 0]
    tifffile.imwrite(tmp_path / "z.tif", np.stack([plane, plane[::-1]]), imagej=True,
                     metadata={"axes": "ZYX"})
    r = unetseg("predict", tmp_path / "z.tif", "--out", tmp_path / "o", "--model",
                tiny_model_path, "--quiet")
    assert r.returncode == 0, r.stderr
    with tifffile.TiffFile(tmp_path / "o" / "z.tif") as tif:
        assert tif.series[0].axes == "ZYX" and tif.series[0].shape == (2, 256, 320)


def test_train_small_run_writes_a_loadable_checkpoint(tmp_path):
    if not SHARED.exists():
        pytest.skip("shared DSB2018 data not present")
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    ids = sorted(p.stem for p in (SHARED / "images").glob("*.png"))[:5]
    for i in ids:
        (images / f"{i}.png").symlink_to(SHARED / "images" / f"{i}.png")
        (labels / f"{i}.tif").symlink_to(SHARED / "labels" / f"{i}.tif")
    (tmp_path / "val.txt").write_text(ids[0] + "\n")
    out = tmp_path / "m.pt"
    r = unetseg("train", "--images", images, "--labels", labels, "--val-list",
                tmp_path / "val.txt", "--encoder", "unet", "--encoder-kwargs",
                '{"depth": 2, "base_width": 4}', "--epochs", "2", "--crop", "64",
                "--batch-size", "2", "--weighted-loss", "--balance-styles", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["epochs"] == 2 and out.exists()
    assert (tmp_path / "m.pt.resume.pt").exists()
    info = json.loads(unetseg("info", out).stdout)
    training = info["provenance"]["training"]
    assert training["crop"] == 64 and training["border_width"] == 3  # the default
    assert training["weighted_loss"] and training["balance_styles"]
    assert set(info["thresholds"]) == {"mask_threshold", "seed_threshold", "min_size"}
    # Resume continues the epoch count.
    r = unetseg("train", "--images", images, "--labels", labels, "--val-list",
                tmp_path / "val.txt", "--resume", out, "--epochs", "3", "--crop", "64",
                "--batch-size", "2", "--out", out, "--no-tune")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["epochs"] == 3


def test_train_centre_distance_model_then_predict(tmp_path):
    # Users' own data: the sample images and their labels, matched by stem.
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    names = ("fluorescence_nuclei", "tissue_stained", "brightfield_nuclei")
    for n in names:
        shutil.copy(SAMPLES / f"{n}.png", images)
        shutil.copy(SAMPLES / "labels" / f"{n}.tif", labels / f"{n}.tif")
    (tmp_path / "val.txt").write_text("tissue_stained\n")
    out = tmp_path / "dist.pt"
    r = unetseg("train", "--images", images, "--labels", labels, "--val-list",
                tmp_path / "val.txt", "--encoder", "unet", "--encoder-kwargs",
                '{"depth": 2, "base_width": 4}', "--targets", "mask_border_distance",
                "--epochs", "1", "--crop", "64", "--batch-size", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(unetseg("info", out).stdout)["targets"] == "mask_border_distance"
    r = unetseg("predict", images / "tissue_stained.png", "--out", tmp_path / "pred",
                "--model", out, "--save-maps", "--quiet")
    assert r.returncode == 0, r.stderr
    maps = tifffile.imread(tmp_path / "pred" / "tissue_stained_maps.tif")
    assert maps.shape == (3, 256, 320)
    assert tifffile.imread(tmp_path / "pred" / "tissue_stained.tif").shape == (256, 320)


def test_train_init_fine_tunes_a_checkpoint_with_new_options(tmp_path, tiny_model_path):
    if not SHARED.exists():
        pytest.skip("shared DSB2018 data not present")
    import torch

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    ids = sorted(p.stem for p in (SHARED / "images").glob("*.png"))[5:8]
    for i in ids:
        (images / f"{i}.png").symlink_to(SHARED / "images" / f"{i}.png")
        (labels / f"{i}.tif").symlink_to(SHARED / "labels" / f"{i}.tif")
    out = tmp_path / "tuned.pt"
    r = unetseg("train", "--images", images, "--labels", labels, "--init", tiny_model_path,
                "--epochs", "1", "--batch-size", "2", "--lr", "1e-3", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["steps"] == 32 and summary["epochs"] == 1  # 64 crops per epoch, 2 a step
    assert len(summary["images"]) == 2 and len(summary["held_out"]) == 1  # the panel's rule
    assert (tmp_path / "tuned.int8.onnx").exists()  # the panel's int8 model too
    info = json.loads(unetseg("info", out).stdout)
    training = info["provenance"]["training"]
    assert training["init"] == str(tiny_model_path.resolve())
    assert training["lr"] == 1e-3 and training["batch_size"] == 2
    assert info["config"] == json.loads(unetseg("info", tiny_model_path).stdout)["config"]
    before = torch.load(tiny_model_path, weights_only=False)["state_dict"]
    after = torch.load(out, weights_only=False)["state_dict"]
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did train
    # Fine-tuning and continuing a run exclude each other; a missing model is one line.
    r = unetseg("train", "--images", images, "--labels", labels, "--init", tiny_model_path,
                "--resume", out, "--epochs", "1", "--out", tmp_path / "x.pt")
    assert r.returncode == 2 and "not both" in r.stderr
    r = unetseg("train", "--images", images, "--labels", labels, "--init",
                tmp_path / "nowhere.pt", "--epochs", "1", "--out", tmp_path / "x.pt")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x.pt").exists()


def test_train_errors_name_the_files(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    shutil.copy(SAMPLES / "tissue_stained.png", images / "a.png")
    r = unetseg("train", "--images", images, "--labels", labels, "--out", tmp_path / "m.pt")
    assert r.returncode == 2 and "a.png" in r.stderr and "no label file" in r.stderr
    r = unetseg("train", "--images", tmp_path / "nowhere", "--labels", labels, "--out",
                tmp_path / "m.pt")
    assert r.returncode == 2 and "not a folder" in r.stderr


def test_quantize_then_predict_with_int8(tmp_path, tiny_model_path):
    from napari_unetseg.core import Predictor

    model = tmp_path / "m.pt"
    shutil.copy(tiny_model_path, model)
    r = unetseg("quantize", model, "--images", SAMPLES, "-n", "2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.int8.onnx").exists()
    assert Predictor(str(model), "cpu", precision="int8").backend == "onnxruntime-int8"
    # auto (the default) takes the int8 file made from this checkpoint; fp32 on request
    assert Predictor(str(model), "cpu").backend == "onnxruntime-int8"
    assert Predictor(str(model), "cpu", precision="fp32").backend == "onnxruntime"
    with pytest.raises(ValueError, match="unetseg quantize"):
        Predictor(str(tiny_model_path), "cpu", precision="int8")
    from napari_unetseg.core.io.images import read_image

    img = read_image(SAMPLES / "tissue_stained.png")
    a = Predictor(str(model), "cpu", precision="int8").predict(img)
    b = Predictor(str(model), "cpu", precision="fp32").predict(img)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.05


def test_int8_file_of_a_retrained_checkpoint_is_not_used(tmp_path, tiny_model_path):
    from napari_unetseg.core import Predictor, build_model, save_checkpoint

    model = tmp_path / "m.pt"
    shutil.copy(tiny_model_path, model)
    assert unetseg("quantize", model, "--images", SAMPLES, "-n", "1").returncode == 0
    # the user retrains into the same file: the int8 file no longer belongs to it
    save_checkpoint(build_model("unet", 3, encoder_kwargs={"depth": 2, "base_width": 4}), model)
    assert Predictor(str(model), "cpu").backend == "onnxruntime"
    with pytest.raises(ValueError, match="another version.*unetseg quantize"):
        Predictor(str(model), "cpu", precision="int8")
    (tmp_path / "m.int8.onnx").write_bytes(b"not onnx")  # damaged: fp32, or a clear error
    assert Predictor(str(model), "cpu").backend == "onnxruntime"
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        Predictor(str(model), "cpu", precision="int8")


def test_train_average_last_keeps_mean_weights_across_resume(tmp_path):
    if not SHARED.exists():
        pytest.skip("shared DSB2018 data not present")
    import torch

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    ids = sorted(p.stem for p in (SHARED / "images").glob("*.png"))[8:11]
    for i in ids:
        (images / f"{i}.png").symlink_to(SHARED / "images" / f"{i}.png")
        (labels / f"{i}.tif").symlink_to(SHARED / "labels" / f"{i}.tif")
    out = tmp_path / "avg.pt"
    common = ["--images", images, "--labels", labels, "--crop", "64", "--batch-size", "2",
              "--average-last", "0.6", "--out", out]
    r = unetseg("train", *common, "--encoder", "unet", "--encoder-kwargs",
                '{"depth": 2, "base_width": 4}', "--epochs", "2")
    assert r.returncode == 0, r.stderr
    # Epoch 1 ends at 50 % of a 2-epoch run, inside its last 60 %.
    assert json.loads(r.stdout)["averaged"]["epochs"] == [1, 2]
    # Extending the run to 3 epochs adds epoch 3 to the average kept in the training state.
    r = unetseg("train", *common, "--resume", out, "--epochs", "3")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["averaged"]["epochs"] == [1, 3]
    state = torch.load(tmp_path / "avg.pt.resume.pt", weights_only=True)
    assert state["averaged_count"] == 3
    # Without validation images the average is what the checkpoint holds, and it differs
    # from the last epoch's weights.
    info = json.loads(unetseg("info", out).stdout)
    assert info["provenance"]["weights"] == "mean of epochs 1-3"
    saved = torch.load(out, weights_only=False)["state_dict"]
    key = next(k for k, v in saved.items() if v.is_floating_point() and v.numel() > 1)
    assert torch.allclose(saved[key].float(), state["averaged"][key].float())
    assert not torch.allclose(saved[key].float(), state["model"][key].float())


@pytest.mark.slow
def test_predict_stitch_and_track_give_one_id_per_nucleus(tmp_path):
    # A time-lapse of a Z-stack made of one real plane repeated, the bundled model: with
    # --mode stitch and --track every nucleus keeps one id through Z and T.
    from napari_unetseg.core.io.images import read_image

    plane = read_image(SAMPLES / "tissue_stained.png")[..., 0]
    stack = np.stack([np.stack([plane] * 3)] * 2)  # TZYX
    tifffile.imwrite(tmp_path / "tl.tif", stack, imagej=True, metadata={"axes": "TZYX"})
    r = unetseg("predict", tmp_path / "tl.tif", "--out", tmp_path / "o", "--quiet",
                "--mode", "stitch", "--track")
    assert r.returncode == 0, r.stderr
    labels = tifffile.imread(tmp_path / "o" / "tl.tif")
    assert labels.shape == stack.shape
    first = labels[0, 0]
    assert len(np.unique(first)) > 50  # the tissue sample's nuclei
    for t in range(2):
        for z in range(3):
            assert np.array_equal(labels[t, z], first)


def test_predict_a_z_stack_in_3d_calibrated_then_evaluate_on_voxels(tmp_path):
    # The 3D sample: --mode auto is 3d for a stack with Z; the voxel size comes from the
    # file and goes into the labels; evaluate scores 3D objects.
    from napari_unetseg.core.io.images import read_label_tiff, read_voxel_size

    images, gt = tmp_path / "images", tmp_path / "gt"
    images.mkdir()
    gt.mkdir()
    shutil.copy(SAMPLES / "nuclei_3d.tif", images)
    shutil.copy(SAMPLES / "labels" / "nuclei_3d.tif", gt)
    shutil.copy(SAMPLES / "tissue_stained.png", images)  # 2D: auto means 2d
    r = unetseg("predict", images, "--out", tmp_path / "o", "--quiet")
    assert r.returncode == 0, r.stderr
    labels, axes, prov = read_label_tiff(tmp_path / "o" / "nuclei_3d.tif")
    assert axes == "ZYX" and prov["mode"] == "3d" and prov["voxel_size_um"] == [1.0, 0.5, 0.5]
    assert read_voxel_size(tmp_path / "o" / "nuclei_3d.tif") == (1.0, 0.5, 0.5)
    assert read_label_tiff(tmp_path / "o" / "tissue_stained.tif")[2]["mode"] == "2d"
    (tmp_path / "o" / "tissue_stained.tif").unlink()
    r = unetseg("evaluate", "--gt", gt, "--pred", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["AP50"] >= 0.8
    r = unetseg("predict", SAMPLES / "tissue_stained.png", "--out", tmp_path / "p", "--quiet",
                "--mode", "3d")
    assert r.returncode == 1 and "--mode 3d needs a Z axis" in r.stderr


@pytest.mark.parametrize("n_images", [1, 3])
def test_train_init_on_a_few_images_trains_like_the_panel(tmp_path, tiny_model_path, n_images):
    # Fewer images than a batch: every epoch still trains (crops drawn with replacement).
    import torch

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    from napari_unetseg.core.io.images import read_image, read_labels

    image = read_image(SAMPLES / "tissue_stained.png")
    gt = read_labels(SAMPLES / "labels" / "tissue_stained.tif")
    for i in range(n_images):  # three different 128-row crops of the tissue sample
        tifffile.imwrite(images / f"t{i}.tif", image[i * 64 : i * 64 + 128])
        tifffile.imwrite(labels / f"t{i}.tif", gt[i * 64 : i * 64 + 128])
    out = tmp_path / "ft.pt"
    r = unetseg("train", "--init", tiny_model_path, "--images", images, "--labels", labels,
                "--epochs", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["steps"] == 16  # the panel's 64 crops in batches of 4
    assert len(summary["held_out"]) == (1 if n_images >= 3 else 0)
    before = torch.load(tiny_model_path, weights_only=True)["state_dict"]
    after = torch.load(out, weights_only=True)["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before
               if before[k].is_floating_point())
    if n_images == 1:
        # The same inputs and seed give the same model from Python (the panel's function).
        from napari_unetseg.core.training.finetune import TrainingPair, fine_tune

        result = fine_tune(tiny_model_path,
                           [TrainingPair("t0.tif", read_image(images / "t0.tif"),
                                         read_labels(labels / "t0.tif"))],
                           tmp_path / "py.pt", epochs=1, make_int8=False, device="cpu")
        same = torch.load(result["checkpoint"], weights_only=True)["state_dict"]
        assert all(torch.allclose(after[k].float(), same[k].float(), atol=1e-5)
                   for k in after)
    # Options of training from scratch are refused, not ignored.
    r = unetseg("train", "--init", tiny_model_path, "--images", images, "--labels", labels,
                "--epochs", "1", "--border-width", "4", "--out", tmp_path / "x.pt")
    assert r.returncode == 2 and "--border-width" in r.stderr and not (tmp_path / "x.pt").exists()


def test_predict_the_nuclear_channel_of_a_two_channel_tiff(tmp_path):
    from napari_unetseg.core.io.images import read_image

    nuclei = read_image(SAMPLES / "tissue_stained.png")[..., 0]
    path = tmp_path / "cyx.tif"
    tifffile.imwrite(path, np.stack([255 - nuclei, nuclei // 3]), imagej=True,
                     metadata={"axes": "CYX"})
    r = unetseg("predict", path, "--out", tmp_path / "out", "--channel", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    labels = tifffile.imread(tmp_path / "out" / "cyx.tif")
    assert labels.shape == (256, 320) and labels.max() > 20
    r = unetseg("predict", path, "--out", tmp_path / "out3", "--channel", "3", "--quiet")
    assert r.returncode == 1 and "has 2 channel(s)" in r.stderr
