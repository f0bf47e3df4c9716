import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unetseg.core import (
    instance_border,
    instance_center_distance,
    make_targets,
    unet_weight_map,
    watershed_from_maps,
)
from tests.conftest import two_touching_discs


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32])
def test_border_separates_touching_discs(width, dtype):
    labels = two_touching_discs().astype(dtype)
    mask, border = make_targets(labels, "mask_border", width)
    assert mask.sum() == (labels > 0).sum()
    # Without the border the two discs are two separate components.
    _, n = ndi.label((mask > 0) & (border == 0))
    assert n == 2
    # Without any border they are one blob: the separation comes from the border.
    _, n_plain = ndi.label(mask > 0)
    assert n_plain == 1


def test_three_class_is_a_partition():
    labels = two_touching_discs()
    t = make_targets(labels, "three_class")
    assert t.shape == (3, *labels.shape)
    assert np.array_equal(t.sum(0), np.ones(labels.shape))
    # Not background = the nuclei themselves (the border class stays inside them), and the
    # interior class still holds the two discs apart.
    assert np.array_equal(t[0] + t[1] > 0, labels > 0)
    assert ndi.label(t[0] > 0)[1] == 2


def test_centre_distance_gives_one_seed_per_touching_disc():
    labels = two_touching_discs() * 5  # sparse ids
    d = instance_center_distance(labels)
    assert d.max() == 1 and np.all(d[labels == 0] == 0) and np.all(d[labels > 0] > 0)
    # Each disc peaks at its own centre, and is lowest where the two meet.
    assert d[32, 34] == 1 and d[32, 62] == 1
    assert d[32, 48] < 0.15
    # The targets themselves as maps: the watershed recovers the two discs exactly.
    t = make_targets(labels, "mask_border_distance")
    assert t.shape == (3, *labels.shape)
    out = watershed_from_maps(t, "mask_border_distance", 0.5, 0.5, 0)
    assert out.max() == 2
    for i in (5, 10):
        assert len(np.unique(out[labels == i])) == 1
    assert np.array_equal(out > 0, labels > 0)


def test_wider_border_is_thicker_and_bool_labels_work():
    labels = two_touching_discs()
    assert instance_border(labels, 3).sum() > instance_border(labels, 1).sum()
    assert make_targets(labels > 0, "binary").shape == (1, *labels.shape)


def test_weight_map_emphasises_the_gap_between_objects():
    labels = np.zeros((40, 60), np.uint16)
    labels[10:30, 5:27] = 1
    labels[10:30, 30:55] = 2  # a 3 px gap at x = 27..29
    w = unet_weight_map(labels, w0=10, sigma=5)
    gap, far = w[20, 28], w[2, 2]
    assert gap > far + 5  # close to w0 in the narrow gap
    assert w.dtype == np.float32 and w.shape == labels.shape


def test_float_labels_must_be_whole_numbers():
    with pytest.raises(ValueError, match="whole numbers"):
        make_targets(np.full((4, 4), 0.5, np.float32))
