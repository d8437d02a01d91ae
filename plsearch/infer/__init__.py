"""Using trained weights: load, segment, predict, evaluate, export, keep.

- ``segmenter``: ``load`` and ``Segmenter`` (sliding tiles, any size).
- ``predict``: masks for image files or folders.
- ``evaluate``: a checkpoint's metrics on a split, with figures.
- ``export``: TorchScript / ONNX export, checked against torch.
- ``artifacts``: kept weights in the study's artifact store.
"""
