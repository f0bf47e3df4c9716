"""napari-unetseg: U-Net nuclei and cell segmentation for napari and the command line."""

__version__ = "0.1.0"
