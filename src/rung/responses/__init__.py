"""responses: what rungs answered, kept in the response cache, and asking a rung through it.

Below the middle floor, so that ``compare`` (which measures rungs) and ``tune`` (whose
distillation asks a teacher rung) share one cache without importing each other.
"""

from rung.responses.ask import Asked, Ready, answer_all, ask_through_cache, cache_fingerprint
from rung.responses.cache import ResponseCache, open_cache, request_key
from rung.responses.progress import Progress, SilentProgress

__all__ = [
    "Asked",
    "Progress",
    "Ready",
    "ResponseCache",
    "SilentProgress",
    "answer_all",
    "ask_through_cache",
    "cache_fingerprint",
    "open_cache",
    "request_key",
]
