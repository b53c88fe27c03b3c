"""TensorRT engines from our ONNX models: build, calibrate, quantize, and the sidecar that checks them.

TensorRT and pycuda are imported lazily (inside functions), so everything here that does not talk to a
GPU — options, cache keys, sidecars, the calibration set, Q/DQ quantization — runs on any CPU.
"""
