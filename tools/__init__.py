"""Tools that read the pipeline's results (reports, the README, the plot page), outside the stages."""
