"""The command line of the report: `python -m lib.reporting make | run | index` (lib.reporting.pipeline)."""
import sys

from lib.reporting.pipeline import main

sys.exit(main())
