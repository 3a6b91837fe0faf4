"""Foundations every other package uses: atomic files, code normalisation, threads and progress bars, the artifact cache
and its versions, where the data live, the optional dask cluster. Imports no other lib package."""
