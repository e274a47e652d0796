"""Locust workloads (one module per kind of traffic) and load shapes.

`loadtests/locustfile.py` is what Locust runs: it picks the workload and the
shape named by LAB_WORKLOAD and LAB_SHAPE, so that exactly one user class and
one shape class are visible to Locust.
"""
