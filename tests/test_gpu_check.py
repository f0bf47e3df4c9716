"""benchmarks/gpu_check.py runs where CI can run it: its CPU path, small sizes."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_gpu_check_runs_its_checks_on_the_cpu():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                          "--device", "cpu", "--quick"], capture_output=True, text=True,
                         timeout=600)
    out = json.loads(run.stdout)
    assert run.returncode == 0, run.stderr[-1000:]
    names = [c["name"] for c in out["checks"]]
    assert names == ["device maps equal CPU fp32", "tiled equals untiled",
                     "training steps lower the loss on a fixed batch"]
    assert out["all_ok"] and out["figures"]["training_network_img_per_s"] > 0
