"""Attack experiments: one condition's images in cached shards, run here or on dask workers, and their per-image
records. Imports the packages above."""
