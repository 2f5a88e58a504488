"""The 1C side: typed rows, the HTTP client of the 1C service, and its emulator.

``OneCClient`` (``client.py``) talks to ``{base_url}/hs/api``; quirks of real 1C answers are
handled in ``parsing.py``; ``breaker.py``, ``cache.py`` and ``request_log.py`` keep it well
behaved; ``errors.py`` draws the error hierarchy. The emulator lives in ``emulator/``.
"""

from tradeos_pipelines.onec.breaker import CircuitBreaker, circuit_state
from tradeos_pipelines.onec.cache import invalidate
from tradeos_pipelines.onec.client import OneCClient, RetryPolicy
from tradeos_pipelines.onec.errors import (
    CircuitOpenError,
    OneCAuthError,
    OneCError,
    OneCNotFound,
    OneCProtocolError,
    OneCUnavailable,
    OneCValidationError,
)
from tradeos_pipelines.onec.request_log import IntegrationLogWriter

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "IntegrationLogWriter",
    "OneCAuthError",
    "OneCClient",
    "OneCError",
    "OneCNotFound",
    "OneCProtocolError",
    "OneCUnavailable",
    "OneCValidationError",
    "RetryPolicy",
    "circuit_state",
    "invalidate",
]
