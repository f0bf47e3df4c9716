"""Exporting label images: TIFF label stacks plus a per-object CSV table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .io import write_label_tiff

COLUMNS = ("image", "plane", "label", "area", "centroid_y", "centroid_x", "mean_intensity")


def _gray(image: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if image is None:
        return None
    image = np.asarray(image)
    if image.shape[:-1] == shape and image.ndim == len(shape) + 1 and image.shape[-1] <= 4:
        image = image[..., :3].mean(axis=-1)  # color: mean over channels (alpha dropped)
    return image.astype(np.float64) if image.shape == shape else None


def object_table(labels: np.ndarray, image: np.ndarray | None = None, name: str = "") -> list:
    """One row per object: image name, plane, label, area, centroid, mean intensity.

    Uses scikit-image's ``regionprops_table`` plane by plane; ``mean_intensity`` is empty
    when no (matching) intensity image is given. Stacks number their planes from 0.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    gray = _gray(image, labels.shape)
    planes = labels.reshape(-1, *labels.shape[-2:])
    gplanes = None if gray is None else gray.reshape(planes.shape)
    rows = []
    for i, plane in enumerate(planes):
        if not plane.any():
            continue
        props = ["label", "area", "centroid"]
        kwargs = {}
        if gplanes is not None:
            props.append("intensity_mean")
            kwargs["intensity_image"] = gplanes[i]
        t = regionprops_table(plane, properties=props, **kwargs)
        for k in range(len(t["label"])):
            rows.append({
                "image": name,
                "plane": i if labels.ndim > 2 else "",
                "label": int(t["label"][k]),
                "area": int(t["area"][k]),
                "centroid_y": round(float(t["centroid-0"][k]), 2),
                "centroid_x": round(float(t["centroid-1"][k]), 2),
                "mean_intensity": (round(float(t["intensity_mean"][k]), 3)
                                   if "intensity_mean" in t else ""),
            })
    return rows


def write_csv(rows: list[dict], path: str | Path, overwrite: bool = False) -> Path:
    """Write object rows as CSV (never replacing a file unless asked)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
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
    provenance: dict | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write a label TIFF and ``<stem>.csv`` beside it; returns both paths."""
    path = Path(path)
    csv_path = path.with_suffix(".csv")
    if not overwrite:
        for p in (path, csv_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; choose another name or allow overwriting")
    tif = write_label_tiff(path, labels, axes=axes, provenance=provenance, overwrite=overwrite)
    return tif, write_csv(object_table(labels, image, name or path.stem), csv_path, overwrite)


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
