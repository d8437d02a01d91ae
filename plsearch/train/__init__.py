"""Training with the paper's protocol: Dice loss per stage, Adam, early stopping.

- ``fit``: the training loop (``fit``), read top to bottom.
- ``run``: one way to run a config (``run_config``: seed, build, ``fit``), the loop's only caller.
- ``losses``: Dice and deep-supervision losses.
- ``lr``: the learning-rate rule shared by trials, references and confirmation.
- ``flatadam``: Adam over one flat buffer (fewer kernel launches for tiny nets).
- ``metrics``: Acc/IoU/Dice/Sens/Spec and the trivial predictors.

``python -m plsearch.train`` runs the train command (``__main__``).
"""
