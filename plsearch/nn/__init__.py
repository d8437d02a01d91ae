"""The torch network built along a wiring.

- ``model``: ``PLNet`` and ``create_model``.
- ``plan``: the execution plan of a wiring (which convs and norms run in which pass and stage).
- ``blocks``: conv units from the block registry (``register_block``) and up units (``register_up``).
- ``speed``: device settings, fast kernels and compilation.
- ``checkpoint``: saving and safely reading weights with the config that rebuilds them.
- ``profile``: params, MACs, latency and peak memory of any ``nn.Module``.
"""
