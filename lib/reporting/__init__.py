"""The report machinery: what a notebook hands to the report, tables, parameters, fingerprints, running notebooks with
papermill, the index page; `python -m lib.reporting make`. Imports lib.infra and lib.inference, never the science:
notebooks are run by path."""
