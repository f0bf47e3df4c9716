import numpy as np
import pytest

from napari_unetseg.core.base.normalize import DEFAULT_NORMALIZATION
from napari_unetseg.core.base.styles import image_style, style_balanced_weights
from napari_unetseg.core.io.images import read_image, read_labels
from napari_unetseg.core.training.data import CropSampler, make_sample

from ..conftest import SAMPLES


@pytest.mark.parametrize(
    ("name", "style"),
    [("fluorescence_nuclei", "gray"), ("tissue_stained", "color"),
     ("brightfield_nuclei", "gray-bright")],
)
def test_image_style_of_the_samples(name, style):
    image = read_image(SAMPLES / f"{name}.png")
    assert image_style(image, DEFAULT_NORMALIZATION) == style


def test_style_balance_gives_rare_styles_sqrt_shares():
    styles = ["gray"] * 90 + ["color"] * 9 + ["gray-bright"] * 1
    p = style_balanced_weights(styles)
    assert p.sum() == pytest.approx(1.0)
    shares = {s: p[[t == s for t in styles]].sum() for s in set(styles)}
    # sqrt(90) : sqrt(9) : sqrt(1) = 9.49 : 3 : 1
    assert shares["gray"] / shares["color"] == pytest.approx(np.sqrt(10))
    assert shares["color"] / shares["gray-bright"] == pytest.approx(3)
    # Within a style, every image is equally likely.
    assert len(set(np.round(p[:90], 12))) == 1


def test_weighted_crops_emphasise_gaps_between_touching_nuclei():
    image = read_image(SAMPLES / "fluorescence_nuclei.png")
    labels = read_labels(SAMPLES / "labels" / "fluorescence_nuclei.tif").astype(np.int32)
    sample = make_sample("f", image, labels, DEFAULT_NORMALIZATION)
    sampler = CropSampler([sample], 128, "mask_border", 2, weighted=True,
                          scale_jitter=(1.0, 1.0))
    x, y, w = sampler.batch([0, 0])
    assert x.shape == (2, 3, 128, 128) and y.shape == (2, 2, 128, 128)
    assert w.shape == (2, 128, 128)
    # Sigmoid targets: no class balancing (Dice does it), so plain pixels weigh 1 and
    # only gaps between objects weigh more (up to 1 + w0).
    assert float(w.min()) == pytest.approx(1.0)
    assert 1.5 < float(w.max()) <= 11.0


def test_crops_bring_every_image_to_the_canonical_nucleus_size(fluo):
    # The same image at two magnifications gives crops whose nuclei have the same size.
    from napari_unetseg.core.base.resample import resize_labels, resize_plane
    from napari_unetseg.core.inference.diameter import median_diameter

    image, labels = fluo
    big = (labels.shape[0] * 2, labels.shape[1] * 2)
    samples = [make_sample("x1", image, labels, DEFAULT_NORMALIZATION),
               make_sample("x2", resize_plane(image, big), resize_labels(labels, big),
                           DEFAULT_NORMALIZATION)]
    assert samples[1].diameter / samples[0].diameter == pytest.approx(2, rel=0.05)
    sampler = CropSampler(samples, 256, "mask_border", 3, weighted=False,
                          canonical_diameter=24.0, scale_jitter=(1.0, 1.0))
    rng = np.random.default_rng(0)
    sizes = []
    for i in (0, 1):
        crops = [sampler.sample(i, rng) for _ in range(4)]
        # Measure on the labels of whole crops: mask minus border separates the nuclei.
        from scipy import ndimage as ndi

        d = [median_diameter(ndi.label(c[1][0] > 0.5)[0]) for c in crops]
        sizes.append(np.median([x for x in d if x]))
    assert sizes[0] == pytest.approx(sizes[1], rel=0.15)
