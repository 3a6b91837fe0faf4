"""Statistical inference: tests, intervals, power, the verdict rule and its claim rows, pooling across replicates; the
published figures our estimates are set beside. Imports only lib.infra."""
