"""The int8 model made in a child process, as the training panel makes it."""

import subprocess
import sys


def test_a_users_script_is_not_run_again_by_the_int8_child(tmp_path, tiny_model_path):
    # A script without a __main__ guard, as biologists write them: multiprocessing's spawn
    # ran its top level a second time in the child (a second viewer opened).
    marker = tmp_path / "runs.txt"
    script = tmp_path / "my_script.py"
    script.write_text(
        "import numpy as np\n"
        "from napari_unetseg.core.inference.quantize import make_int8_in_child\n"
        f"open({str(marker)!r}, 'a').write('ran\\n')\n"
        "rng = np.random.default_rng(0)\n"
        "images = [rng.integers(0, 255, (96, 96), np.uint8) for _ in range(2)]\n"
        f"out, n = make_int8_in_child({str(tiny_model_path)!r}, images, n=2,\n"
        f"                            out={str(tmp_path / 'tiny.int8.onnx')!r})\n"
        "print(out, n)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran\n"  # once: the child did not import the script
    assert (tmp_path / "tiny.int8.onnx").exists() and done.stdout.strip().endswith(" 2")
