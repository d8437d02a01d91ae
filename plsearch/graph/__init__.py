"""The graph: topology as data, and its exact costs before any tensor exists (no torch).

- ``wiring``: levels, passes, stages and FSC/BSC edges of a config (``build_wiring``, ``estimate``).
- ``costs``: parameter and MAC counts of a wiring, equal to the built model's.
- ``memory``: activation memory of a forward or training step, from the wiring.
- ``draw``: a picture of a wiring (matplotlib).
"""
