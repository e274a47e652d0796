"""What `locust -f loadtests/locustfile.py` runs: one workload, one shape.

LAB_WORKLOAD (default "shop") and LAB_SHAPE (default "constant") pick them;
only the picked classes are bound here, so Locust sees exactly one shape.
LAB_RATE set runs the workload on the open model (loadtests/open_model.py).
"""

from __future__ import annotations

import logging
import os

from locust import events

from loadtests import open_model, request_log
from loadtests.shapes import SHAPES
from loadtests.workloads import user_classes

_shape_name = os.environ.get("LAB_SHAPE", "constant")
if _shape_name not in SHAPES:
    raise SystemExit(f"unknown shape '{_shape_name}'; valid: {', '.join(SHAPES)}")

LabShape = type("LabShape", (SHAPES[_shape_name],), {})
for _cls in user_classes(os.environ.get("LAB_WORKLOAD", "shop")):
    globals()[_cls.__name__] = _cls
del _cls  # Locust collects every User class bound in this module, loop variable included

open_model.install()
request_log.install()


@events.request.add_listener
def _log_server_errors(
    request_type: str, name: str, exception: Exception | None, response: object = None, **_: object
) -> None:
    # Failures are in locust_failures.csv; this puts the first lines of each
    # kind in locust.log too, where a user looking at a failing run reads first.
    if exception is not None:
        logging.getLogger("lab.load").debug("%s %s failed: %s", request_type, name, exception)
