"""Whole segmentations: one request in, labels and provenance out (:mod:`.segmentation`), for
planes, stacks, volumes, many files (one process or Dask) and images larger than memory."""
