"""A folder of images and the label files saved for them: which file belongs to which
image, and what each saved file says about itself (corrected by hand, made by which model).

No Qt: the folder browser asks these questions, and so can a script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    from .images import read_label_provenance

    path = Path(path)
    if not path.exists():
        return {}
    try:
        return record_of(read_label_provenance(path))
    except (OSError, ValueError):
        return {"edited_by_hand": True}


def record_of(provenance: dict) -> dict:
    """A saved file's provenance with ``edited_by_hand`` always set: labels without a record
    of the model that made them were made by someone."""
    return dict(provenance, edited_by_hand=provenance.get("edited_by_hand",
                                                          "model" not in provenance))


def default_output(folder: Path) -> Path:
    """``labels/`` inside the image folder: one per folder, never shared by two folders."""
    return Path(folder) / "labels"


@dataclass
class ImageFolder:
    """The images of a folder being corrected and the rules about their label files.

    The folder browser keeps one; so can a script that walks a folder as the browser does.

    Attributes
    ----------
    images : list of Path
    out_dir : Path
        Where the label files go (``<out_dir>/<stem>.tif``, see :func:`label_file`).
    redo_uncorrected : bool
        Labels nobody corrected that another model made count as outdated (after "Segment
        the remaining images" with a new model).
    """

    images: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    redo_uncorrected: bool = False

    @classmethod
    def open(cls, folder: str | Path, out_dir: str | Path | None = None) -> ImageFolder:
        """The images of ``folder``; ValueError (ImageReadError) when it has none."""
        from .images import ImageReadError, list_images

        folder = Path(folder).expanduser()
        images = list_images(folder)
        if not images:
            raise ImageReadError(f"No images (PNG, TIFF, JPEG) in {folder}")
        return cls(images, Path(out_dir).expanduser() if out_dir else default_output(folder))

    def label_path(self, image: Path) -> Path:
        return label_file(self.out_dir, self.images, image)

    def has_labels(self, image: Path) -> bool:
        return self.out_dir is not None and self.label_path(image).exists()

    def labelled_count(self) -> int:
        return sum(self.has_labels(p) for p in self.images)

    def first_without_labels(self) -> int:
        """The index to open first: the first image without saved labels (else 0)."""
        return next((i for i, p in enumerate(self.images) if not self.has_labels(p)), 0)

    def corrected(self, image: Path) -> bool:
        """Saved labels that someone corrected (or that were not made by a model)."""
        return saved_record(self.label_path(image)).get("edited_by_hand", False)

    def uncorrected(self) -> list[int]:
        """Indices of the images without corrected labels."""
        return [i for i, p in enumerate(self.images) if not self.corrected(p)]

    def outdated(self, image: Path, model: str, provenance: dict | None = None) -> bool:
        """Uncorrected labels made by another model than ``model`` (after
        :attr:`redo_uncorrected` was set)."""
        record = (saved_record(self.label_path(image)) if provenance is None
                  else record_of(provenance))
        return (self.redo_uncorrected and bool(record) and not record["edited_by_hand"]
                and record.get("model") != model)

    def corrected_pairs(self) -> list[tuple[Path, Path]]:
        """(image, labels file) of every image whose saved labels someone corrected."""
        return [(p, self.label_path(p)) for p in self.images if self.corrected(p)]

    def to_export(self, include_uncorrected: bool) -> tuple[list[Path], int]:
        """The images whose labels an export takes, and how many saved ones it leaves out."""
        saved = [p for p in self.images if self.has_labels(p)]
        done = [p for p in saved if include_uncorrected or self.corrected(p)]
        return done, len(saved) - len(done)

    def refusal(self, image: Path, provenance: dict, labels_shape, plane_shape) -> str | None:
        """Why saved labels must be neither shown over ``image`` nor replaced, or None."""
        saved = self.label_path(image)
        if is_foreign(provenance, image):
            return (f"{saved} holds the labels of {provenance.get('source_folder', '')}/"
                    f"{provenance.get('source')}, not of {image}; they are not shown and "
                    "will not be replaced (choose another 'Labels to' folder)")
        if tuple(labels_shape[-2:]) != tuple(plane_shape):
            # Another folder's file of the same name, say.
            return (f"{saved} is {tuple(labels_shape[-2:])} but {image.name} is "
                    f"{tuple(plane_shape)}; those labels are not shown and will not be "
                    "replaced")
        return None

    def may_replace(self, image: Path) -> bool:
        """Whether saving over ``image``'s label file is safe (it is not another image's)."""
        from .images import read_label_provenance

        path = self.label_path(image)
        if not path.exists():
            return True
        try:
            return not is_foreign(read_label_provenance(path), image)
        except (OSError, ValueError):
            return False  # not a label file of ours: never replaced

    @staticmethod
    def save_record(provenance: dict, image: Path, edited: bool) -> dict:
        """The provenance saved with ``image``'s labels.

        Corrected by hand now or in an earlier session: the training panel offers these.
        Labels not made by a model (no ``model`` in their record) were made by someone.
        """
        prov = record_of(dict(provenance or {}, source=image.name,
                              source_folder=str(image.parent)))
        prov["edited_by_hand"] = bool(edited or prov["edited_by_hand"])
        return prov


__all__ = ["ImageFolder", "default_output", "is_foreign", "label_file", "record_of",
           "saved_record"]
