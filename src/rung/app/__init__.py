"""app: what the two ways in (the CLI and the server) run end to end, tying the middle
floor's parts together so that they never import each other: ``compare_spec`` measures the
rungs (compare), advises on them (advise) and writes the run folder with its reports (report);
``check_spec`` runs a spec again and gates the new run against a baseline (check).
"""

from rung.app.check import CheckResult, check_spec
from rung.app.compare import CompareResult, compare_spec, compare_spec_file

__all__ = ["CheckResult", "CompareResult", "check_spec", "compare_spec", "compare_spec_file"]
