"""Make sample_data/nuclei_3d.tif (+ labels): a small synthetic Z-stack from a real sample.

The fluorescence sample's nuclei (hand-drawn DSB2018 labels) grown into 3D bodies by
core.synthetic.synthetic_volume: Z step 1 µm, pixels 0.5 µm (anisotropy 2), calibrated
ImageJ TIFFs that Fiji and the plugin read the voxel size from.

    python benchmarks/make_sample_volume.py
"""

from pathlib import Path

import numpy as np
import tifffile

from napari_unetseg.core.base.synthetic import synthetic_volume
from napari_unetseg.core.io.images import read_image, read_labels, write_label_tiff

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
VOXEL = (1.0, 0.5, 0.5)  # Z, Y, X in µm


def main():
    image = read_image(ROOT / "fluorescence_nuclei.png")
    labels = read_labels(ROOT / "labels" / "fluorescence_nuclei.tif")
    crop = (slice(0, 256), slice(200, 456))
    volume, truth = synthetic_volume(labels[crop], image[crop], anisotropy=VOXEL[0] / VOXEL[1],
                                     seed=0)
    volume = (volume // 8).astype(np.uint16)  # a 12-bit camera range: compresses to < 2 MB
    # Keep every id 1..N (ground truth ids are the 2D ones of the crop, with gaps).
    from skimage.segmentation import relabel_sequential

    truth = relabel_sequential(truth)[0].astype(np.uint16)
    out = ROOT / "nuclei_3d.tif"
    tifffile.imwrite(out, volume, imagej=True, resolution=(1 / VOXEL[2], 1 / VOXEL[1]),
                     metadata={"axes": "ZYX", "spacing": VOXEL[0], "unit": "micron"},
                     compression="zlib")
    gt = write_label_tiff(ROOT / "labels" / "nuclei_3d.tif", truth, axes="ZYX",
                          voxel_size=VOXEL, overwrite=True,
                          provenance={"source": "synthetic from DSB2018 fluorescence_nuclei"})
    print(f"{out}: {volume.shape} {volume.dtype}, {out.stat().st_size / 1e6:.2f} MB; "
          f"{gt}: {int(truth.max())} nuclei")


if __name__ == "__main__":
    main()
