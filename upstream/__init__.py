"""upstream: a fake third-party API (payments, inventory) that the lab can make misbehave.

Run it with `uvicorn upstream.app:app` (`lab up` does). See upstream/app.py.
"""

__version__ = "0.1.0"
