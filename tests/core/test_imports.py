import subprocess
import sys


def test_importing_the_package_and_core_loads_no_gui_and_no_torch():
    code = (
        "import sys, napari_unetseg, napari_unetseg.core;"
        "bad = [m for m in ('torch', 'timm', 'napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6',"
        " 'magicgui') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_using_core_imports_torch_but_still_no_gui():
    code = (
        "import sys; from napari_unetseg.core import build_model; build_model('unet', 1,"
        " encoder_kwargs={'depth': 1, 'base_width': 2});"
        "print(','.join(m for m in ('napari', 'qtpy', 'PyQt6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
