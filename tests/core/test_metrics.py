import numpy as np
import pytest

from napari_unetseg.core.instances.metrics import evaluate_folders, image_scores, summarize


def test_perfect_prediction_scores_one_regardless_of_ids():
    gt = np.zeros((10, 10), int)
    gt[1:4, 1:4], gt[6:9, 6:9] = 1, 2
    pred = np.where(gt == 1, 7, np.where(gt == 2, 3, 0))
    assert np.allclose(image_scores(gt, pred), 1.0)


def test_hand_computed_case():
    # One nucleus of 10 px; the prediction covers 8 of them plus 0 extra: IoU 0.8.
    gt = np.zeros((5, 10), int)
    gt[2, :] = 1
    pred = np.zeros_like(gt)
    pred[2, :8] = 1
    # A false positive elsewhere.
    pred[0, 0] = 2
    s = image_scores(gt, pred)
    # Thresholds 0.50..0.75 match (IoU 0.8 > t): TP=1, FP=1, FN=0 -> 1/2.
    # Thresholds 0.80..0.95 don't (0.8 is not > 0.8): TP=0, FP=2, FN=1 -> 0.
    assert np.allclose(s[:6], 0.5) and np.allclose(s[6:], 0.0)
    out = summarize([s])
    assert out["mAP_50_95"] == pytest.approx(0.3)
    assert out["AP50"] == pytest.approx(0.5) and out["AP75"] == pytest.approx(0.5)


def test_empty_cases():
    empty = np.zeros((4, 4), int)
    one = empty.copy()
    one[1, 1] = 1
    assert np.allclose(image_scores(empty, empty), 1)
    assert np.allclose(image_scores(empty, one), 0)
    assert np.allclose(image_scores(one, empty), 0)


def test_missing_prediction_scores_zero(tmp_path):
    from napari_unetseg.core.io.images import write_label_tiff

    gt = np.zeros((8, 8), np.uint16)
    gt[2:5, 2:5] = 1
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    write_label_tiff(tmp_path / "gt" / "a.tif", gt)
    write_label_tiff(tmp_path / "gt" / "b.tif", gt)
    write_label_tiff(tmp_path / "pred" / "a.tif", gt * 5)
    summary, rows = evaluate_folders(tmp_path / "gt", tmp_path / "pred")
    assert summary["mAP_50_95"] == pytest.approx(0.5)
    assert summary["images"] == 2 and summary["missing_predictions"] == 1
    assert [r["missing"] for r in rows] == [False, True]
