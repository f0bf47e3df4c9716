"""The choices users make, named once: stack modes, devices, precisions, runtime backends.

The command line's ``choices=``, the panels' drop-downs and the checks in core all read
these tuples; the ``Literal`` types say the same to a type checker.
"""

from __future__ import annotations

from typing import Literal

#: How ids run through Z in a stack: per plane, linked by overlap, or 3D objects; ``auto``
#: is 3d with a Z axis (the best in benchmarks/bench_volumes.py), else 2d.
StackMode = Literal["auto", "2d", "stitch", "3d"]
STACK_MODES: tuple[str, ...] = ("auto", "2d", "stitch", "3d")

#: Where the network runs; ``auto`` is the best available (CUDA, then Apple MPS, then CPU).
Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")

#: ``int8`` runs the quantized ONNX model on the CPU; ``auto`` uses it when it is current.
Precision = Literal["auto", "fp32", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "int8")

#: What runs the network (``NAPARI_UNETSEG_BACKEND`` forces one).
Backend = Literal["auto", "onnxruntime", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "onnxruntime", "torch")


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``choices``, else a one-line ValueError naming them.

    >>> check_choice("3d", STACK_MODES, "stack mode")
    '3d'
    >>> check_choice("4d", STACK_MODES, "stack mode")
    Traceback (most recent call last):
    ...
    ValueError: unknown stack mode '4d'; choose one of auto, 2d, stitch, 3d
    """
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value
