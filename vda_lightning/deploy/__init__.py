"""Deployment: the video model as ONNX graphs (whole, encoder + head parts, the online streaming step) with JSON
sidecars, an onnxruntime backend the long-video runners accept, and TensorRT engines built from the ONNX files.

Nothing heavy is imported here: `vda export --help` and `vda infer --help` stay fast.

    from vda_lightning.deploy.onnx_export import export_onnx       # model -> model.onnx (+ parts, streaming)
    from vda_lightning.deploy.ort_backend import OnnxRuntimeModel  # DIR -> runner backend
    from vda_lightning.deploy.tensorrt import build_engine         # model.onnx -> model.engine (CUDA + tensorrt)
"""
