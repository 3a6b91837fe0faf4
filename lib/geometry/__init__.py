"""Tangent spaces of an autoencoder and the subspaces attacks are confined to (tangent, random, PCA, coordinate).
Imports lib.infra."""
