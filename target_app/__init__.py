"""The FastAPI app under test: a small shop with fault seams and full instrumentation."""
