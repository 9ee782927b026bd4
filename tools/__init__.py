"""Tools run outside the DAG: the studies (tools/study.py and one module per study), the README generator, the plot page."""
