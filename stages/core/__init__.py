"""Code shared by the stages: one module per concern.

- ``params``: params.yaml sections turned into validated dataclasses.
- ``io``: every file the pipeline writes goes through here, atomically.
- ``data``: datasets, download with integrity checks, IDX parsing, splits, normalization.
- ``models``: the MLP classifier, the conv autoencoder and VAE, each with its loss.
- ``training``: the one training loop (``train_one_epoch``, ``evaluate``, ``fit``).
- ``evaluation``: reconstruction errors, representations and downstream classifiers.
- ``plots``: figure functions (arrays in, matplotlib Figure out).
"""
