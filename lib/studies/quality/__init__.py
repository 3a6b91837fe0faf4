"""Does the answer depend on how well the models are trained? The claims over checkpoints and training-set sizes, and
their trends (notebook 11)."""
