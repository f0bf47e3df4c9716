import numpy as np
from scipy import ndimage as ndi

from napari_unetseg.core.instances.metrics import image_scores
from napari_unetseg.core.run.pipeline import segment_image, segment_plane
from napari_unetseg.core.training.targets import make_targets

THRESHOLDS = {"mask_threshold": 0.5, "seed_threshold": 0.5, "min_size": 4}


class MapsFromLabels:
    """Stands in for a Predictor: serves fixed maps for whichever rows it is given.

    The 'image' holds each pixel's row index, so any band passed in tells which rows of
    the maps to return; this isolates the band logic from any network.
    """

    targets = "mask_border"
    normalization = {"kind": "percentile", "low": 1.0, "high": 99.8, "channels": 3,
                     "invert_bright_background": False}
    thresholds = THRESHOLDS

    def tile_count(self, shape, tile=1024, overlap=128):
        return 1

    def __init__(self, labels):
        t = make_targets(labels, "mask_border")
        self.maps = np.stack([ndi.gaussian_filter(c, 1.0) for c in t]).astype(np.float32)
        self.calls = 0

    def predict_plane(self, plane, **_):
        self.calls += 1
        rows = plane[:, 0].astype(int)
        return self.maps[:, rows].copy()


def test_bands_give_the_same_objects_as_the_whole_plane(fluo):
    _, labels = fluo
    fake = MapsFromLabels(labels)
    rows = np.repeat(np.arange(labels.shape[0], dtype=np.float32)[:, None], labels.shape[1], 1)
    whole = segment_plane(fake, rows, THRESHOLDS)
    assert fake.calls == 1 and whole.max() >= 0.8 * len(np.unique(labels[labels > 0]))
    banded = segment_plane(fake, rows, THRESHOLDS, band_threshold=0, band_rows=96, halo=48)
    assert fake.calls == 1 + int(np.ceil(labels.shape[0] / 96))
    assert banded.max() == whole.max() and banded.dtype == np.uint16
    # Same objects (ids may differ): every object matched at IoU > 0.9.
    assert image_scores(whole, banded)[8] == 1.0


def test_segment_image_keeps_stacks_and_unique_ids(fluo):
    from napari_unetseg.core import Predictor

    pred = Predictor("default", "cpu")
    img = fluo[0][:256, :256]
    out = segment_image(pred, np.stack([img, img]), diameter=pred.diameter)
    assert out.shape == (2, 256, 256)
    a, b = set(np.unique(out[0])) - {0}, set(np.unique(out[1])) - {0}
    # The bundled model finds the crop's nuclei in both planes, under different ids.
    assert len(a) == len(b) >= 10 and not (a & b)
    assert np.array_equal(out[1] > 0, out[0] > 0)
