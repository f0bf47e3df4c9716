"""The napari layer: dock widgets, reader, writer and sample data. Work is done by core."""
