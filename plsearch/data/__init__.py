"""Data: image folders, NIfTI volumes and the synthetic set, split one way.

- ``dataset``: ``SegmentationData``, splits (``load_splits``), the 2D/3D dispatch and ``DataError``.
- ``folder``: 2D ``images/`` + ``masks/`` folders and the decoded-image cache.
- ``volume``: NIfTI volumes (Medical Segmentation Decathlon / nnU-Net layout) and their resampling.
- ``volume_data``: 3D splits from a volume folder.
- ``synthetic``: plsearch's own synthetic data set (no downloads).
- ``augment``: the paper's augmentation of a batch, on its device.
"""
