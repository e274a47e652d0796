"""Locust workloads (one module per kind of traffic) and load shapes.

`loadtests/locustfile.py` is what Locust runs: it picks the workload and the
shape named by LAB_WORKLOAD and LAB_SHAPE, so that exactly one user class and
one shape class are visible to Locust.

Importing `locust` monkey-patches the process with gevent, so the lab itself
never imports it: the names of the shapes are kept here, and a test checks
them against `loadtests.shapes.SHAPES` in a separate process.
"""

SHAPE_NAMES = ("constant", "step", "spike")
