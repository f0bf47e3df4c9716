"""Reading images and labels, writing ImageJ-compatible label TIFF stacks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_TIFF = (".tif", ".tiff")
# Our axis order: stack axes first, then Y, X, then channels last.
_ORDER = "TZYXC"


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file and the reason."""


def is_image_file(path: str | Path) -> bool:
    """True for files whose suffix this package reads."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _reorder(data: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Transpose to T, Z, Y, X, C order; squeeze singleton axes we have no use for."""
    axes = axes.upper().replace("S", "C")
    if "C" in axes and axes.count("C") > 1:
        raise ImageReadError(f"image has several channel axes ({axes})")
    keep = []
    for i, a in enumerate(axes):
        if a in _ORDER:
            keep.append(i)
        elif data.shape[i] == 1:
            continue
        else:
            # Unknown stack axes (ImageJ's I, Q, ...) are treated as Z when Z is free.
            if "Z" in axes:
                raise ImageReadError(f"unsupported axes {axes!r} in shape {data.shape}")
            axes = axes[:i] + "Z" + axes[i + 1 :]
            keep.append(i)
    data = data.squeeze(axis=tuple(i for i in range(data.ndim) if i not in keep))
    axes = "".join(axes[i] for i in keep)
    if "C" in axes and data.shape[axes.index("C")] == 1:
        data = data.squeeze(axis=axes.index("C"))
        axes = axes.replace("C", "")
    order = sorted(range(len(axes)), key=lambda i: _ORDER.index(axes[i]))
    return np.transpose(data, order), "".join(axes[i] for i in order)


def read_image_with_axes(path: str | Path) -> tuple[np.ndarray, str | None]:
    """Read an image and, for TIFF files that record them, its axes (in T, Z, Y, X, C order).

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, BMP or TIFF (multi-page, ImageJ hyperstack, OME-TIFF).

    Returns
    -------
    (ndarray, str or None)
        The pixels and the axes, or None where the file does not say.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: file not found")
    if p.is_dir():
        raise ImageReadError(f"{p}: is a folder, not an image")
    try:
        if p.suffix.lower() in _TIFF:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                series = tif.series[0]
                data = series.asarray()
                axes = series.axes
            if "Q" in axes:
                # tifffile's "unknown" axis: the file records no axes (a (256, 256, 5) array
                # is stored as 256 pages of 256 x 5). Guessed from the shape instead.
                return data, None
            data, axes = _reorder(data, axes)
            return data, axes
        import imageio.v3 as iio

        data = iio.imread(p)
    except ImageReadError as exc:
        raise ImageReadError(f"{p}: {exc}") from None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(f"{p}: not a readable image ({reason})") from None
    if data.ndim not in (2, 3) or data.size == 0:
        raise ImageReadError(f"{p}: unexpected image shape {data.shape}")
    return data, None


def stored_axes(path: str | Path) -> str | None:
    """The axes of a TIFF's first series in the order the pixels are stored (``"CYX"``),
    from its ImageJ or OME metadata; colour samples (S) count as channels (C).

    napari's own reader gives the stored array, so these name a layer's axes. None for
    other files, unreadable ones, or files that record no axes beyond the pixel grid.
    """
    p = Path(path)
    if p.suffix.lower() not in _TIFF or not p.is_file():
        return None
    try:
        import tifffile

        with tifffile.TiffFile(p) as tif:
            axes = tif.series[0].axes.upper().replace("S", "C")
    except Exception:
        return None
    return axes if set(axes) - {"Y", "X"} else None


def select_channel(image: np.ndarray, axes: str, channel: int) -> tuple[np.ndarray, str]:
    """One channel of an image: the C axis dropped.

    Parameters
    ----------
    image : ndarray
    axes : str
        One letter per axis, with a ``C``.
    channel : int
        0-based index along C.

    Examples
    --------
    >>> import numpy as np
    >>> img, axes = select_channel(np.zeros((2, 5, 6)), "CYX", 1)
    >>> img.shape, axes
    ((5, 6), 'YX')
    """
    axes = axes.upper()
    if "C" not in axes:
        raise ValueError(f"the image has no channel axis (axes {axes}); leave the channel "
                         "out, or give the axes")
    k = axes.index("C")
    n = image.shape[k]
    if not 0 <= channel < n:
        raise ValueError(f"channel {channel} does not exist: the image has {n} channel(s), "
                         f"0 to {n - 1}")
    return np.take(image, channel, axis=k), axes.replace("C", "")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as an array (see :func:`read_image_with_axes`)."""
    return read_image_with_axes(path)[0]


def read_labels(path: str | Path) -> np.ndarray:
    """Read an instance label image (integer); RGB(A) label files are refused."""
    data = read_image(path)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and Path(path).suffix.lower() not in _TIFF:
        raise ImageReadError(f"{path}: labels must be a single-channel integer image")
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
            raise ImageReadError(f"{path}: labels must hold whole numbers")
        data = data.astype(np.int64)
    elif data.dtype == bool:
        data = data.astype(np.uint8)
    elif data.dtype.kind not in "ui":
        raise ImageReadError(f"{path}: labels have unsupported dtype {data.dtype}")
    return data


def list_images(folder: str | Path) -> list[Path]:
    """Image files in a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if is_image_file(p))


class LabelTiffWarning(UserWarning):
    """A label TIFF was written in a form some tools (ImageJ) cannot show."""


#: Marks label files written by this package (read back by the napari reader).
LABELS_MARK = "napari-unetseg labels"


def default_label_axes(ndim: int) -> str:
    """Axes assumed for a label array of ``ndim`` dimensions (YX, ZYX, TZYX)."""
    try:
        return {2: "YX", 3: "ZYX", 4: "TZYX"}[ndim]
    except KeyError:
        raise ValueError(f"labels must have 2 to 4 dimensions, got {ndim}") from None


def write_label_tiff(
    path: str | Path,
    labels: np.ndarray,
    *,
    axes: str | None = None,
    provenance: dict | None = None,
    overwrite: bool = False,
    page_names: list[str] | None = None,
    voxel_size: tuple[float, ...] | None = None,
) -> Path:
    """Write instance labels as an ImageJ-compatible TIFF label stack.

    2D labels become one page, stacks one page per plane, with the axes recorded (ZYX, TYX,
    TZYX) so Fiji opens them as a stack, and a display range of 0..max label. Labels are
    stored as uint16 when the largest id fits, otherwise as uint32, which ImageJ cannot
    show (a :class:`LabelTiffWarning` says so). zlib compression.

    Parameters
    ----------
    path : str or Path
    labels : ndarray
        Integer (or bool) labels, 2 to 4 dimensions.
    axes : str, optional
        Axes of ``labels`` such as ``"TYX"``; by default YX, ZYX or TZYX.
    provenance : dict, optional
        Model, thresholds, version ...; stored as JSON in the file's description.
    overwrite : bool
        Replace an existing file; otherwise :class:`FileExistsError`.
    page_names : list of str, optional
        ImageJ slice labels, one per page (e.g. the image each page came from).
    voxel_size : tuple of float, optional
        Pixel size (Y, X) or voxel size (Z, Y, X) in µm: Fiji opens the file calibrated
        (:func:`read_voxel_size` reads it back).

    Returns
    -------
    Path
    """
    import tifffile

    from ..base.labels import label_dtype

    path = Path(path)
    labels, axes = _checked_labels(labels, axes)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    max_label = int(labels.max()) if labels.size else 0
    dtype = label_dtype(max_label)
    calibration = _calibration(voxel_size, axes)
    data = labels.astype(dtype, copy=False)
    if dtype == np.uint16:
        # ImageJ hyperstacks need the axes in TZCYX order, which ours already are.
        info = json.dumps({"napari_unetseg": dict(provenance or {}), "axes": axes})
        md = {"axes": axes, "min": 0, "max": max(max_label, 1), "Info": info,
              **({"Labels": list(page_names)} if page_names is not None else {}),
              **(dict(unit="micron", **calibration["imagej"]) if calibration else {})}
        imagej = True
    else:
        warnings.warn(f"{path.name}: label {max_label} does not fit 16 bits; written as "
                      f"{dtype}, which ImageJ/Fiji cannot display", LabelTiffWarning,
                      stacklevel=2)
        md = {"axes": axes, "napari_unetseg": provenance or {},
              **({"page_names": list(page_names)} if page_names is not None else {}),
              **({"voxel_size_um": calibration["zyx"]} if calibration else {})}
        imagej = False
    _write_atomically(path, lambda tmp: tifffile.imwrite(
        tmp, data, imagej=imagej, metadata=md, resolution=calibration.get("resolution"),
        compression="zlib", software=LABELS_MARK))
    return path


def _checked_labels(labels, axes: str | None) -> tuple[np.ndarray, str]:
    """Non-negative integer labels and their axes, or a one-line ValueError."""
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.dtype.kind not in "ui":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not be negative")
    axes = (axes or default_label_axes(labels.ndim)).upper()
    if len(axes) != labels.ndim or not axes.endswith("YX") or not set(axes) <= set("TZYX"):
        raise ValueError(f"axes {axes!r} do not fit labels of shape {labels.shape}")
    return labels, axes


def _write_atomically(path: Path, write) -> None:
    """``write(tmp)`` a hidden file beside ``path``, then rename it: whole or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _calibration(voxel_size, axes: str) -> dict:
    """How a voxel size (µm; (Y, X) or (Z, Y, X)) is written to a TIFF; {} without one."""
    if voxel_size is None:
        return {}
    size = [float(v) for v in voxel_size]
    if len(size) not in (2, 3) or not all(v > 0 and np.isfinite(v) for v in size):
        raise ValueError(f"voxel size must be 2 or 3 positive numbers (µm), got {voxel_size}")
    z, y, x = size if len(size) == 3 else (1.0, *size)
    imagej = {"spacing": z} if "Z" in axes else {}
    return {"resolution": (1 / x, 1 / y), "imagej": imagej, "zyx": [z, y, x]}


_UNITS_UM = {"micron": 1.0, "um": 1.0, "µm": 1.0, "\\u00B5m": 1.0, "microns": 1.0,
             "micrometer": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3}


def read_voxel_size(path: str | Path) -> tuple[float, float, float] | None:
    """The voxel size (Z, Y, X) in µm recorded in a TIFF, or None when it records none.

    Reads ImageJ calibration (resolution tags, ``spacing`` and ``unit``), OME-TIFF
    ``PhysicalSizeX/Y/Z`` and the files :func:`write_label_tiff` writes. Z is 1 when only
    the pixel size is known.
    """
    import tifffile

    p = Path(path)
    if p.suffix.lower() not in _TIFF:
        return None
    try:
        with tifffile.TiffFile(p) as tif:
            if tif.is_ome:
                return _ome_voxel_size(tif.ome_metadata)
            shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
            if "voxel_size_um" in shaped:
                return tuple(float(v) for v in shaped["voxel_size_um"])
            page, ij = tif.pages.first, tif.imagej_metadata or {}
            res = page.tags.get("XResolution"), page.tags.get("YResolution")
            unit = str(ij.get("unit", "micron" if ij else "")).strip().lower()
            factor = _UNITS_UM.get(unit)
    except Exception:
        return None
    if factor is None or None in res:
        return None
    (xn, xd), (yn, yd) = res[0].value, res[1].value
    if not (xn and yn):
        return None
    x, y = xd / xn * factor, yd / yn * factor
    z = float(ij.get("spacing", 1.0)) * factor if "spacing" in ij else 1.0
    if x == 1.0 and y == 1.0 and "spacing" not in ij:
        return None  # ImageJ's default: not calibrated
    return z, y, x


def _ome_voxel_size(xml: str | None) -> tuple[float, float, float] | None:
    import xml.etree.ElementTree as ET

    if not xml:
        return None
    pixels = next((e for e in ET.fromstring(xml).iter() if e.tag.endswith("Pixels")), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None

    def size(axis: str) -> float:
        value = float(pixels.attrib.get(f"PhysicalSize{axis}", 1.0))
        unit = pixels.attrib.get(f"PhysicalSize{axis}Unit", "µm").lower()
        return value * _UNITS_UM.get(unit, 1.0)

    return size("Z"), size("Y"), size("X")


def is_label_tiff(path: str | Path) -> bool:
    """True when ``path`` is a label TIFF written by :func:`write_label_tiff`."""
    p = Path(path)
    if p.suffix.lower() not in _TIFF or not p.is_file():
        return False
    try:
        import tifffile

        with tifffile.TiffFile(p) as tif:
            software = tif.pages.first.software or ""
    except Exception:
        return False
    return software.startswith(LABELS_MARK)


def read_label_tiff(path: str | Path) -> tuple[np.ndarray, str, dict]:
    """Read a label TIFF written by :func:`write_label_tiff`: (labels, axes, provenance)."""

    p = Path(path)
    labels, axes = read_image_with_axes(p)
    return labels, axes or default_label_axes(labels.ndim), read_label_provenance(p)


def read_label_provenance(path: str | Path) -> dict:
    """The provenance record of a label TIFF, from its metadata alone (no pixels read)."""
    import tifffile

    with tifffile.TiffFile(Path(path)) as tif:
        ij = tif.imagej_metadata or {}
        if "Info" in ij:
            try:
                return json.loads(ij["Info"]).get("napari_unetseg", {})
            except ValueError:
                return {}
        if tif.shaped_metadata:
            return dict(tif.shaped_metadata[0].get("napari_unetseg", {}))
    return {}


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (an OME-Zarr image), not a file."""
    return path.is_dir() and (path.suffix.lower() == ".zarr" or (path / "zarr.json").exists()
                              or (path / ".zattrs").exists())
