"""Build hook: ship the top-level ``napari.yaml`` and ``sample_data/`` inside the package.

They live at the top of the repository, where people and napari's plugin tools look for
them; the manifest entry point (``napari_unetseg:napari.yaml``) and the File > Open Sample
menu need them inside the package. Copying them at build time, rather than keeping symlinks
in ``src/``, works on checkouts without symlinks (Windows). An editable install copies them
into ``src/napari_unetseg/`` (ignored by git): reinstall after editing them.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("napari.yaml", "sample_data")


class BuildWithManifestAndSamples(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        package = ROOT / "src" if editable else Path(self.build_lib)
        for name in SHIPPED:
            source, target = ROOT / name, package / "napari_unetseg" / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("README.md"))
            else:
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildWithManifestAndSamples})
