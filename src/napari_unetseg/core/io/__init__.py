"""Files: reading images and labels, writing TIFF and OME-Zarr labels atomically, exporting
label sets and object tables, and the rules of a folder of images being corrected."""
