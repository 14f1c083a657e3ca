"""route: the SLM-first cascade. The small rung answers when it is sure, the request climbs
when it is not; thresholds calibrated on a compare run to keep a quality target at the least
cost, and replayed over a run to show what a cascade would have done.

The ``cascade`` backend (``rung.route.cascade``) is imported only through the model registry,
so importing this package stays light.
"""

from rung.route.calibrate import Calibration, CurvePoint, calibrate, order_rungs
from rung.route.policy import Policy, decide
from rung.route.simulate import Evaluation, RungShare, simulate
from rung.route.table import RungColumn, RunTable, load_run

__all__ = [
    "Calibration",
    "CurvePoint",
    "Evaluation",
    "Policy",
    "RunTable",
    "RungColumn",
    "RungShare",
    "calibrate",
    "decide",
    "load_run",
    "order_rungs",
    "simulate",
]
