"""Running a network on images: runtime backends (eager torch, ONNX Runtime, int8) below the
tiled :class:`~.predictor.Predictor`, the nucleus diameter it rescales by, and int8
quantization above it (:mod:`.quantize`)."""
