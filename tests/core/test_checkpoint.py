import json
import os

import pytest
import torch

from napari_unetseg.core import CheckpointError, build_model, load_checkpoint, save_checkpoint
from napari_unetseg.core.network.checkpoint import FORMAT_VERSION, read_checkpoint_info


@pytest.mark.parametrize("encoder,kwargs", [("unet", {"depth": 2, "base_width": 4}),
                                            ("timm:resnet18", {})])
def test_round_trip_is_bit_identical(tmp_path, encoder, kwargs):
    model = build_model(encoder, 2, "three_class", "bilinear", encoder_kwargs=kwargs).eval()
    # Make BN statistics non-trivial so that they must be saved too.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 2, 45, 67)
    with torch.no_grad():
        y = model(x)
    path = save_checkpoint(model, tmp_path / "m.pt", provenance={"epochs": 3},
                           thresholds={"mask_threshold": 0.4, "seed_threshold": 0.7,
                                       "min_size": 5})
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), y)
    assert info["config"]["encoder"] == encoder
    assert info["targets"] == "three_class"
    assert loaded.thresholds["seed_threshold"] == 0.7
    assert info["provenance"]["epochs"] == 3
    assert "package_version" in info["provenance"] and "date" in info["provenance"]


def test_half_precision_storage_is_smaller_and_close(tmp_path):
    model = build_model("unet", 1, encoder_kwargs={"depth": 2, "base_width": 8}).eval()
    full = save_checkpoint(model, tmp_path / "f.pt")
    half = save_checkpoint(model, tmp_path / "h.pt", half=True)
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(half)[0](x), model(x), atol=2e-2, rtol=0)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_failures_raise_one_clear_sentence(tmp_path, tiny_model_path):
    cases = {}
    cases["not found"] = tmp_path / "missing.pt"
    (tmp_path / "text.pt").write_text("hello")
    cases["not a checkpoint file"] = tmp_path / "text.pt"
    raw = tiny_model_path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = tmp_path / "trunc.pt"
    torch.save({"format": "x", "obj": Evil()}, tmp_path / "evil.pt")
    cases["refused for safety"] = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    cases["not a napari-unetseg checkpoint"] = tmp_path / "plain.pt"
    payload = torch.load(tiny_model_path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "newer.pt")
    cases["newer napari-unetseg"] = tmp_path / "newer.pt"
    payload = torch.load(tiny_model_path, weights_only=True)
    payload["config"]["encoder_kwargs"]["base_width"] = 16
    torch.save(payload, tmp_path / "mismatch.pt")
    cases["do not fit"] = tmp_path / "mismatch.pt"
    for expected, path in cases.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        msg = str(err.value)
        assert expected in msg, (path.name, msg)
        assert "\n" not in msg


def test_custom_module_instances_cannot_be_saved(tmp_path):
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(4, 8, 3, padding=1))
    with pytest.raises(CheckpointError, match="module:package.module:function"):
        save_checkpoint(build_model(seq, 1), tmp_path / "c.pt")


def make_encoder(width: int = 8):
    """An importable builder for the test below."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Conv2d(width, 2 * width, 3,
                                                                      padding=1))


def test_custom_encoder_with_builder_path_round_trips(tmp_path):
    model = build_model(f"module:{__name__}:make_encoder", 1, encoder_kwargs={"width": 6})
    path = save_checkpoint(model.eval(), tmp_path / "c.pt")
    # The file names code to call: refused unless the user trusts it.
    with pytest.raises(CheckpointError, match="trust_code=True"):
        load_checkpoint(path)
    loaded, info = load_checkpoint(path, trust_code=True)
    x = torch.randn(1, 1, 40, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert info["config"]["encoder_kwargs"] == {"width": 6}


def test_info_is_json_serialisable(tiny_model_path):
    info = read_checkpoint_info(tiny_model_path)
    json.dumps(info)
    assert info["parameters"] > 0
