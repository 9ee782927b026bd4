"""DVC pipeline stages: one module per stage, run as ``python -m stages.<name>``."""
