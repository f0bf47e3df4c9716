"""A folder of images and the label files saved for them: which file belongs to which
image, and what each saved file says about itself (corrected by hand, made by which model).

No Qt: the folder browser asks these questions, and so can a script.
"""

from __future__ import annotations

from pathlib import Path


def label_file(out_dir: Path, images: list[Path], image: Path) -> Path:
    """``<out_dir>/<stem>.tif``; ``<stem>_<suffix>.tif`` when another of ``images`` has the
    same stem (``a.png`` and ``a.tif`` must not share one file).

    Examples
    --------
    >>> from pathlib import Path
    >>> imgs = [Path("a.png"), Path("a.tif"), Path("b.png")]
    >>> [label_file(Path("l"), imgs, i).name for i in imgs]
    ['a_png.tif', 'a_tif.tif', 'b.tif']
    """
    image = Path(image)
    if sum(p.stem == image.stem for p in images) > 1:
        return Path(out_dir) / f"{image.stem}_{image.suffix.lstrip('.').lower()}.tif"
    return Path(out_dir) / f"{image.stem}.tif"


def is_foreign(provenance: dict, image: Path) -> bool:
    """Labels saved for another image: another folder sharing the labels folder, or a file
    of another name. They are never shown over ``image`` and never replaced.

    Examples
    --------
    >>> from pathlib import Path
    >>> is_foreign({"source": "t.png", "source_folder": "/one"}, Path("/two/t.png"))
    True
    >>> is_foreign({}, Path("/two/t.png"))
    False
    """
    source, folder = provenance.get("source"), provenance.get("source_folder")
    return ((source is not None and source != Path(image).name)
            or (folder is not None and folder != str(Path(image).parent)))


def saved_record(path: Path) -> dict:
    """The provenance of a saved label file, with ``edited_by_hand`` always set ({} when
    there is no file). Labels without a record of the model that made them were made by
    someone; a file that cannot be read is someone's work too."""
    from .images import read_label_tiff

    path = Path(path)
    if not path.exists():
        return {}
    try:
        prov = read_label_tiff(path)[2]
    except (OSError, ValueError):
        return {"edited_by_hand": True}
    return dict(prov, edited_by_hand=prov.get("edited_by_hand", "model" not in prov))


__all__ = ["is_foreign", "label_file", "saved_record"]
