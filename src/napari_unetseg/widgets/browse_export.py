"""Exporting from the folder browser: the labels on screen, or every saved labels file of
the folder, as TIFF label stacks and per-object CSV tables (the work is core.export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QFileDialog, QMessageBox

from .layer_keys import AXES_KEY, PROVENANCE_KEY


class LabelExport:
    """The browser's export actions (mixed into BrowseWidget, which holds the folder)."""

    def export_current(self, path: str | None = None) -> None:
        """Export the current labels (TIFF + CSV); the file dialog confirms overwriting."""
        from napari.layers import Image, Labels
        from napari.utils.notifications import show_error, show_info

        from napari_unetseg.core.io.export import export_labels

        labels, image_layer = self.labels_layer, self.image_layer
        if labels is None:  # not browsing: the Labels layer selected in the viewer
            active = self.viewer.layers.selection.active
            labels = active if isinstance(active, Labels) else next(
                (lyr for lyr in reversed(self.viewer.layers) if isinstance(lyr, Labels)), None)
            source = (labels.metadata.get(PROVENANCE_KEY) or {}).get("source") if (
                labels is not None) else None
            image_layer = self.viewer.layers[source] if source in self.viewer.layers else None
            if image_layer is not None and not isinstance(image_layer, Image):
                image_layer = None
        if labels is None:
            show_error("There are no labels to export")
            return
        # The save dialog asks before replacing a file; a path given by code never replaces.
        overwrite = path is None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export labels", str(
                self.out_dir or Path.home()) + f"/{labels.name}.tif",
                "TIFF label stack (*.tif)")
            if not path:
                return
        md = labels.metadata
        axes = md.get(AXES_KEY)
        provenance = md.get(PROVENANCE_KEY) or {}
        image = None if image_layer is None else np.asarray(image_layer.data)
        # A stack's calibration is its layer scale (the Segment panel sets it).
        voxel = tuple(float(v) for v in labels.scale[-3:]) if axes and "Z" in axes else None
        try:
            tif, table = export_labels(path, np.asarray(labels.data), image=image,
                                       name=image_layer.name if image_layer else labels.name,
                                       axes=axes, overwrite=overwrite, voxel_size=voxel,
                                       per_plane=provenance.get("mode", "2d") == "2d",
                                       provenance=provenance or None)
        except (FileExistsError, ValueError, OSError) as exc:
            show_error(str(exc))
            return
        show_info(f"Exported {tif.name} and {table.name}")

    def export_all(self, out_dir: str | None = None) -> None:
        """Export all saved labels of the folder as one stack (same shapes) or per image."""
        from napari.utils.notifications import show_error, show_info

        from napari_unetseg.core.io.export import export_label_set
        from napari_unetseg.core.io.images import read_image, read_label_tiff

        if self.busy or not self._leave_current():
            return
        done, left_out = self.folder.to_export(self.include_uncorrected.isChecked())
        if not done:
            show_error("No corrected labels to export yet" + (
                f" ({left_out} image(s) have labels nobody corrected: tick 'Include labels "
                "nobody corrected' to export them)" if left_out else ""))
            return
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self, "Export into folder")
            if not out_dir:
                return
            existing = [n for n in ("labels_stack.tif", "objects.csv")
                        if (Path(out_dir) / n).exists()]
            if existing and QMessageBox.question(
                self, "Replace files?", f"Replace {', '.join(existing)} in {out_dir}?"
            ) != QMessageBox.StandardButton.Yes:
                return
            overwrite = True
        else:
            overwrite = False
        files = [(p, self.label_path(p)) for p in done]

        def work():  # the files are read off the UI thread
            return export_label_set(
                [p.stem for p, _ in files], [read_label_tiff(lp)[0] for _, lp in files],
                out_dir, images=[read_image(p) for p, _ in files], overwrite=overwrite)

        def exported(written):
            show_info(f"Exported {len(done)} images to {', '.join(p.name for p in written)}"
                      + (f"; {left_out} with labels nobody corrected were left out"
                         if left_out else ""))

        self.status_label.setText(f"Exporting {len(done)} images…")
        self.job.start(work, returned=exported, errored=lambda exc: show_error(str(exc)),
                       finished=self._update_buttons)

