"""The diagnosis engine: the root cause of a run named from its evidence alone.

blind.py keeps only what production has; signs.py reads it; engine.py ranks what
each scenario's signature (faults/_signs.py) and each condition of the
environment (environment.py) finds; render.py shows it.
"""

from .engine import Candidate, Diagnosis, DiagnosisFile, diagnose, diagnose_signs

__all__ = ["Candidate", "Diagnosis", "DiagnosisFile", "diagnose", "diagnose_signs"]
