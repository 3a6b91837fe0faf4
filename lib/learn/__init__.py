"""Data sets, networks and their training (classifiers, autoencoders, checkpoints, the Isometric Autoencoder), cached.
Imports lib.infra and lib.geometry."""
