"""DVC pipeline stages: one module per stage, run as ``python -m stages.<name>``."""
from time import perf_counter

# The first thing `python -m stages.<name>` runs: `make bench` counts a stage's start-up
# (its imports) from here to its main (stages/core/timing.py).
STARTED = perf_counter()
