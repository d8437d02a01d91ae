"""Config and gate: plain frozen data, checked before anything runs (no torch).

- ``schema``: the config dataclasses (``ModelConfig``, ``DataConfig``, ``TrainConfig``, ``RunConfig``).
- ``gate``: the one way overrides are applied and checked (``resolve``, ``parse_sets``).
- ``naming``: dotted config paths and their names in messages.
- ``presets``: the named configurations (PL-Net, PL-Net-dagger, BiO-Net, U-Net) and ``register_preset``.
- ``registry``: the one ``Registry`` every extension point uses.
- ``safeyaml``: YAML reading that refuses what is not plain data.
"""
