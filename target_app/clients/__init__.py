"""Clients of the app's dependencies (upstream API, Redis), measured on every call."""
