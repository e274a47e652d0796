"""The inventory service: a second app with its own database (microservice-cascade)."""

__version__ = "1.0.0"
