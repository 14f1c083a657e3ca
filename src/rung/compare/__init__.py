"""compare: run the rungs of a spec on a task's data and measure them (``runner``), turn what
they did into the run record (``results``), and price it (``cost``).

Running a whole comparison into a run folder, with its advice and reports, is
``rung.app.compare_spec``; the spec is ``rung.runs.spec``.
"""
