"""Fine-tuning on a handful of corrected images: it always trains, or says why not."""

import numpy as np
import pytest

from napari_unetseg.core.training.finetune import (
    FineTuneError,
    TrainingPair,
    check_pairs,
    fine_tune,
    held_out_count,
    should_use,
)


def _state(path):
    import torch

    return torch.load(path, weights_only=True)["state_dict"]


def _changed(a, b) -> bool:
    import torch

    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_one_corrected_image_trains(tmp_path, tiny_model_path, tissue):
    image, labels = tissue
    result = fine_tune(tiny_model_path, [TrainingPair("t.png", image, labels)],
                       tmp_path / "mine.pt", epochs=1, make_int8=False, device="cpu")
    # One image, batches of 4: crops drawn with replacement, 64 of them, 16 steps.
    assert result["steps"] == 16 and result["images"] == ["t.png"] and not result["held_out"]
    assert _changed(_state(tiny_model_path), _state(result["checkpoint"]))
    assert result["use"]  # nothing held out, nothing against it


def test_cancel_before_the_first_step_writes_nothing(tmp_path, tiny_model_path, tissue):
    from napari_unetseg.core.training.train import TrainingError

    image, labels = tissue
    with pytest.raises(TrainingError, match="before its first step"):
        fine_tune(tiny_model_path, [TrainingPair("t.png", image, labels)],
                  tmp_path / "mine.pt", epochs=3, make_int8=False, device="cpu",
                  cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_held_out_rule_and_adoption_rule():
    assert [held_out_count(n, None) for n in (1, 2, 3, 8)] == [0, 0, 1, 1]
    assert held_out_count(4, 2) == 2 and held_out_count(2, True) == 1
    with pytest.raises(FineTuneError, match="at least 2 images"):
        held_out_count(1, True)
    assert should_use(None, None) and should_use(0.3, 0.3) and not should_use(0.4, 0.39)


def test_label_ids_are_kept_apart_and_bad_labels_refused():
    image = np.zeros((8, 8), np.uint8)
    labels = np.zeros((8, 8), np.uint64)
    labels[:4] = 5
    labels[4:] = 5 + 2**32  # a cast to int32 would merge the two objects
    (pair,) = check_pairs([TrainingPair("a", image, labels)])
    assert sorted(np.unique(pair.labels)) == [1, 2]
    negative = np.full((8, 8), -3, np.int32)
    with pytest.raises(FineTuneError, match="negative ids"):
        check_pairs([TrainingPair("b", image, negative)])


def test_fewer_images_than_a_batch_still_train(tmp_path, tissue):
    from napari_unetseg.core.training.train import TrainConfig, train
    from tests.core.test_train import _pairs

    tr, va = _pairs(tmp_path)
    config = TrainConfig(encoder="unet", encoder_kwargs={"depth": 3, "base_width": 8},
                         crop=64, batch_size=8, epochs=2, canonical_diameter=24.0)
    summary = train(config, tr[:1], va, tmp_path / "m.pt", show_progress=False)
    assert summary["steps"] == 2 and summary["epochs"] == 2


def test_fold_in_teaches_the_held_out_image_after_scoring_it(tmp_path, tiny_model_path,
                                                             tissue):
    from napari_unetseg.core.network.checkpoint import read_checkpoint_info

    image, labels = tissue
    pairs = [TrainingPair("a", image[:128], labels[:128]),
             TrainingPair("b", image[128:], labels[128:])]
    epochs = []
    # The default: the held-out image judges the first half, then is trained on too.
    result = fine_tune(tiny_model_path, pairs, tmp_path / "m.pt", epochs=2, hold_out=1,
                       make_int8=False, device="cpu", on_epoch=epochs.append)
    assert result["held_out"] == ["b"] and result["after"] is not None
    assert result["steps"] == 32  # one epoch on "a", then one on both
    # One epoch count across both halves; only the first half is scored on "b".
    assert result["epochs"] == 2 and [e["epoch"] for e in epochs] == [1, 2]
    assert result["trained_on_held_out"]
    assert "mAP_50_95" in epochs[0] and "mAP_50_95" not in epochs[1]
    prov = read_checkpoint_info(result["checkpoint"])["provenance"]
    assert prov["images_used"] == ["a", "b"] and prov["held_out_then_trained_on"]


def test_cancel_between_the_halves_keeps_the_first_half(tmp_path, tiny_model_path, tissue):
    from napari_unetseg.core.network.checkpoint import read_checkpoint_info

    image, labels = tissue
    pairs = [TrainingPair("a", image[:128], labels[:128]),
             TrainingPair("b", image[128:], labels[128:])]
    stop = []

    def log(line):
        if "held-out image too" in line:
            stop.append(line)

    result = fine_tune(tiny_model_path, pairs, tmp_path / "m.pt", epochs=2, hold_out=1,
                       make_int8=False, device="cpu", log=log, cancel=lambda: bool(stop))
    assert stop and result["interrupted"] and result["steps"] == 16
    assert not result["trained_on_held_out"]
    prov = read_checkpoint_info(result["checkpoint"])["provenance"]
    assert prov["images_used"] == ["a"] and not prov["held_out_then_trained_on"]
