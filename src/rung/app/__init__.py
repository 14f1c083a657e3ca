"""app: what the two ways in (the CLI and the server) run end to end, tying the middle
floor's parts together so that they never import each other: ``compare_spec`` measures the
rungs (compare), advises on them (advise) and writes the run folder with its reports (report).
"""

from rung.app.compare import CompareResult, compare_spec, compare_spec_file

__all__ = ["CompareResult", "compare_spec", "compare_spec_file"]
