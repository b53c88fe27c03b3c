"""ONNX -> engines: the TensorRT build, INT8 calibration and Q/DQ quantization (`build_engine.py`).

Depends on the runtime (engine files, sidecars, the TensorRT library) and never the reverse. TensorRT
and pycuda are imported inside functions, so everything that does not talk to a GPU runs on any CPU.
"""
