"""Data: one split contract and one in-memory type for 2D and 3D, and one module per data format.

- ``dataset``: ``load_splits``, ``load_data``, ``peek``: the format of ``data.root``, then one split.
- ``splits``: ``SegmentationData`` (images and volumes alike), ``split_ids`` (fractions, seed, CSV), ``DataError``.
- ``formats``: the ``DataFormat`` protocol and its registry (``register_format``, ``detect_format``).
- ``folder``: the ``folder`` format: 2D ``images/`` + ``masks/`` folders and the decoded-image cache.
- ``volume``: the ``msd`` format: NIfTI volumes (MSD / nnU-Net layout) and their resampling.
- ``synthetic``: the ``synthetic`` format: plsearch's own synthetic data set (no downloads).
- ``volume_data``: the old 3D names (``VolumeData`` is ``SegmentationData``), kept importable.
- ``augment``: the paper's augmentation of a batch, on its device.
"""
