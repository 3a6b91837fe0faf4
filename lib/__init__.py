"""dimpled: shared code of the Dimpled Manifold Model report. One job per module."""
