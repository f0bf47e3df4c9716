"""Exporting label images: TIFF label stacks plus a per-object CSV table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .images import write_label_tiff

#: ``area`` is in pixels; ``area_um2`` needs the pixel size; ``intensity_source`` says what
#: ``mean_intensity`` measures (the image's one channel, or the mean of its colours).
COLUMNS = ("image", "plane", "label", "area", "area_um2", "centroid_y", "centroid_x",
           "mean_intensity", "intensity_source")
#: Columns of 3D objects (labels with a Z axis, one id per nucleus through Z).
COLUMNS_3D = ("image", "frame", "label", "volume_voxels", "volume_um3", "centroid_z",
              "centroid_y", "centroid_x", "mean_intensity", "intensity_source")


def _gray(image: np.ndarray | None, shape: tuple[int, ...]):
    """The intensities measured per object, and what they are (None, "" without)."""
    if image is None:
        return None, ""
    image = np.asarray(image)
    what = "image (one channel)"
    if image.shape[:-1] == shape and image.ndim == len(shape) + 1 and image.shape[-1] <= 4:
        image = image[..., :3].mean(axis=-1)  # color: mean over channels (alpha dropped)
        what = "mean of the colour channels"
    if image.shape != shape:
        return None, ""
    return image.astype(np.float64), what


def object_table(labels: np.ndarray, image: np.ndarray | None = None, name: str = "", *,
                 axes: str | None = None, voxel_size: tuple[float, ...] | None = None,
                 per_plane: bool = False, intensity_source: str | None = None) -> list:
    """One row per object, with scikit-image's ``regionprops_table``.

    2D objects (labels without a Z axis, or planes of a stack segmented on their own): image
    name, plane, label, area, centroid, mean intensity, plane by plane. 3D objects (``axes``
    with Z): image name, frame (time point, empty without T), label, volume in voxels and,
    with ``voxel_size`` (Z, Y, X in µm), in µm³, centroid z/y/x in voxels, mean intensity.
    ``mean_intensity`` is empty when no matching intensity image is given;
    ``intensity_source`` says what it measures (default: the image's one channel, or the
    mean of its colours). 2D rows have ``area_um2`` when ``voxel_size`` gives the pixel
    size (its last two values). ``per_plane`` gives 2D rows for a stack whose planes were
    segmented on their own (mode ``2d``). Ids far larger than their count (2**32 + 5) are
    measured through a compact numbering and reported as they are.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    original_ids = None
    if labels.size and int(labels.max()) > 4 * labels.size:
        # Sparse ids (one of 2**32 + 5): regionprops sizes its work by the largest id.
        from skimage.segmentation import relabel_sequential

        labels, _, original_ids = relabel_sequential(labels)
    gray, source = _gray(image, labels.shape)
    source = intensity_source or source
    pixel = float(np.prod(voxel_size[-2:])) if voxel_size else None
    volumes = axes is not None and "Z" in axes.upper() and not per_plane
    n_space = 3 if volumes else 2
    parts = labels.reshape(-1, *labels.shape[-n_space:])
    gparts = None if gray is None else gray.reshape(parts.shape)
    voxel = float(np.prod(voxel_size)) if volumes and voxel_size else None
    rows = []
    for i, part in enumerate(parts):
        if not part.any():
            continue
        kwargs = {} if gparts is None else {"intensity_image": gparts[i]}
        props = ["label", "area", "centroid", *(["intensity_mean"] if kwargs else [])]
        t = regionprops_table(part, properties=props, **kwargs)
        if original_ids is not None:
            t["label"] = np.asarray(original_ids[t["label"]])
        for k in range(len(t["label"])):
            mean = round(float(t["intensity_mean"][k]), 3) if kwargs else ""
            c = [round(float(t[f"centroid-{d}"][k]), 2) for d in range(n_space)]
            size = int(t["area"][k])
            if volumes:
                rows.append({"image": name, "frame": i if labels.ndim > 3 else "",
                             "label": int(t["label"][k]), "volume_voxels": size,
                             "volume_um3": round(size * voxel, 3) if voxel else "",
                             "centroid_z": c[0], "centroid_y": c[1], "centroid_x": c[2],
                             "mean_intensity": mean, "intensity_source": source})
            else:
                rows.append({"image": name, "plane": i if labels.ndim > 2 else "",
                             "label": int(t["label"][k]), "area": size,
                             "area_um2": round(size * pixel, 4) if pixel else "",
                             "centroid_y": c[0], "centroid_x": c[1], "mean_intensity": mean,
                             "intensity_source": source})
    return rows


def write_csv(rows: list[dict], path: str | Path, overwrite: bool = False) -> Path:
    """Write object rows as CSV (never replacing a file unless asked).

    The columns are :data:`COLUMNS`, then those of :data:`COLUMNS_3D` that 3D rows add.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    keys = set().union(*rows) if rows else set(COLUMNS)
    columns = [c for c in dict.fromkeys(COLUMNS + COLUMNS_3D) if c in keys or c in COLUMNS]
    if rows and not keys & {"plane", "area"}:  # 3D objects only
        columns = list(COLUMNS_3D)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    return path


def export_labels(
    path: str | Path,
    labels: np.ndarray,
    *,
    image: np.ndarray | None = None,
    name: str = "",
    axes: str | None = None,
    voxel_size: tuple[float, float, float] | None = None,
    per_plane: bool = False,
    provenance: dict | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write a label TIFF and ``<stem>.csv`` beside it; returns both paths.

    ``voxel_size`` (Z, Y, X, in µm) calibrates the TIFF (Fiji reads it) and gives the CSV
    volumes in µm³ when the labels are 3D objects (``axes`` with Z and not ``per_plane``,
    see :func:`object_table`).
    """
    path = Path(path)
    csv_path = path.with_suffix(".csv")
    if not overwrite:
        for p in (path, csv_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; choose another name or allow overwriting")
    tif = write_label_tiff(path, labels, axes=axes, provenance=provenance, overwrite=overwrite,
                           voxel_size=voxel_size)
    rows = object_table(labels, image, name or path.stem, axes=axes, voxel_size=voxel_size,
                        per_plane=per_plane)
    return tif, write_csv(rows, csv_path, overwrite)


def export_label_set(
    names: list[str],
    labels: list[np.ndarray],
    out_dir: str | Path,
    *,
    images: list[np.ndarray | None] | None = None,
    stack_name: str = "labels_stack.tif",
    overwrite: bool = False,
) -> list[Path]:
    """Export many label images: one multi-page stack when all are 2D of one shape.

    The stack has one page per image, named after it (ImageJ slice labels), and
    ``objects.csv`` lists every object with its image name. Otherwise each image gets its
    own ``<name>.tif`` and the CSV still covers all of them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not labels:
        raise ValueError("there are no labels to export")
    images = images or [None] * len(labels)
    rows = []
    for n, lab, img in zip(names, labels, images):
        rows.extend(object_table(lab, img, n))
    shapes = {np.asarray(lab).shape for lab in labels}
    if len(shapes) == 1 and len(next(iter(shapes))) == 2:
        written = [write_label_tiff(out_dir / stack_name, np.stack(labels), axes="ZYX",
                                    page_names=list(names), overwrite=overwrite,
                                    provenance={"images": list(names)})]
    else:
        written = [write_label_tiff(out_dir / f"{n}.tif", lab, overwrite=overwrite)
                   for n, lab in zip(names, labels)]
    written.append(write_csv(rows, out_dir / "objects.csv", overwrite=overwrite))
    return written
