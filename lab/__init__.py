"""The lab's CLI and orchestration: app, load, sampling, profilers, reports."""

__version__ = "0.1.0"
