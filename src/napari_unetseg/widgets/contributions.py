"""npe2 contributions that are not dock widgets: sample data, reader and writer.

No Qt here: napari calls these with paths and layer data.
"""

from __future__ import annotations

from pathlib import Path

from .layer_keys import AXES_KEY, PROVENANCE_KEY, SOURCE_KEY

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
SAMPLES = {
    "fluorescence_nuclei": "Fluorescence nuclei (DSB2018, 258 nuclei)",
    "tissue_stained": "Stained tissue (DSB2018, 111 nuclei)",
    "brightfield_nuclei": "Bright-field nuclei 1024x1024 (DSB2018, 94 nuclei)",
}


def sample_layers(name: str, with_labels: bool = False) -> list[tuple]:
    """Layer data for a bundled sample image (and its ground truth labels)."""
    from napari_unetseg.core.io.images import read_image, read_labels

    image = read_image(SAMPLE_DIR / f"{name}.png")
    layers = [(image, {"name": name, "rgb": image.ndim == 3}, "image")]
    if with_labels:
        labels = read_labels(SAMPLE_DIR / "labels" / f"{name}.tif")
        layers.append((labels, {"name": f"{name} ground truth", "opacity": 0.5}, "labels"))
    return layers


def sample_volume(with_labels: bool = False) -> list[tuple]:
    """The synthetic 3D nuclei stack, at its voxel size (and its exact ground truth)."""
    from napari_unetseg.core.io.images import read_image, read_labels, read_voxel_size

    path = SAMPLE_DIR / "nuclei_3d.tif"
    scale = read_voxel_size(path)
    layers = [(read_image(path), {"name": "nuclei_3d", "scale": scale}, "image")]
    if with_labels:
        layers.append((read_labels(SAMPLE_DIR / "labels" / "nuclei_3d.tif"),
                       {"name": "nuclei_3d ground truth", "opacity": 0.5, "scale": scale},
                       "labels"))
    return layers


def sample_volume_with_labels():
    return sample_volume(with_labels=True)


def sample_fluorescence():
    return sample_layers("fluorescence_nuclei")


def sample_fluorescence_with_labels():
    return sample_layers("fluorescence_nuclei", with_labels=True)


def sample_tissue():
    return sample_layers("tissue_stained")


def sample_tissue_with_labels():
    return sample_layers("tissue_stained", with_labels=True)


def sample_brightfield():
    return sample_layers("brightfield_nuclei")


def get_label_tiff_reader(path):
    """Reader hook: label TIFF stacks written by napari-unetseg; None for anything else."""
    from napari_unetseg.core.io.images import is_label_tiff

    if not isinstance(path, (str, Path)):
        return None
    try:
        if not is_label_tiff(path):
            return None
    except Exception:
        return None
    return _read_label_tiff


def _read_label_tiff(path):
    from napari_unetseg.core.io.images import read_label_tiff, read_voxel_size

    labels, axes, provenance = read_label_tiff(path)
    meta = {
        "name": Path(path).stem,
        "metadata": {AXES_KEY: axes, PROVENANCE_KEY: provenance,
                     SOURCE_KEY: str(path)},
    }
    voxel = read_voxel_size(path)
    if voxel is not None and "Z" in axes:
        meta["scale"] = (*[1.0] * (labels.ndim - 3), *voxel)
    return [(labels, meta, "labels")]


def write_labels_tiff(path: str, data, meta: dict) -> list[str]:
    """Writer hook: a Labels layer to an ImageJ-compatible TIFF label stack.

    napari's save dialog has already asked before replacing an existing file.
    """
    import numpy as np

    from napari_unetseg.core.io.images import write_label_tiff

    if not str(path).lower().endswith((".tif", ".tiff")):
        path = f"{path}.tif"
    md = meta.get("metadata") or {}
    axes = md.get(AXES_KEY)
    data = np.asarray(data)
    if axes is not None and len(axes) != data.ndim:
        axes = None
    scale = [float(v) for v in meta.get("scale", ())][-3:]
    calibrated = axes is not None and "Z" in axes and len(scale) == 3 and scale != [1.0] * 3
    write_label_tiff(path, data, axes=axes, provenance=md.get(PROVENANCE_KEY),
                     overwrite=True, voxel_size=scale if calibrated else None)
    return [str(path)]
