"""Code the stages share, one module per concern (docs/pipeline.md lists them)."""
