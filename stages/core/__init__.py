"""Code the stages share, one module per concern (README, "The pipeline", lists them)."""
