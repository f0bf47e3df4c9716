"""The keys of what this plugin stores in napari layers' ``metadata``, named once.

Other plugins and scripts may read them, so their string values never change.
"""

#: Axes of a labels layer's data (``"YX"``, ``"ZYX"``, ``"TZYX"``...).
AXES_KEY = "unetseg_axes"
#: The provenance record (model, thresholds, source...) written into label files.
PROVENANCE_KEY = "unetseg_provenance"
#: The file a labels layer was read from.
SOURCE_KEY = "unetseg_source"
#: A labels layer's :class:`.session.SegmentationState` (maps, edits, thresholds).
STATE_KEY = "unetseg_state"
#: Marks the Edit panel's selection outline (a helper layer, never exported or saved).
HIGHLIGHT_KEY = "unetseg_highlight"
#: The Zarr labels array a large-image layer shows.
ZARR_KEY = "unetseg_zarr"
