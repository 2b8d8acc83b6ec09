"""Typed provider errors: each carries the ``reason`` label of ``aicost_poll_errors_total``."""

from __future__ import annotations

from typing import ClassVar


class ProviderError(Exception):
    """Base of all provider failures. ``reason`` is the metric label value."""

    reason: ClassVar[str] = "upstream"
    retryable: ClassVar[bool] = False


class AuthError(ProviderError):
    reason = "auth"


class RateLimitError(ProviderError):
    reason = "rate_limit"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(ProviderError):
    reason = "upstream"
    retryable = True

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClientError(UpstreamError):
    """A 4xx other than 401/403/429: the request itself was refused, so a retry inside the
    poll would get the same answer. Counted as ``upstream`` like any other refusal."""

    retryable = False


class ProviderTimeout(ProviderError):
    reason = "timeout"
    retryable = True


class ParseError(ProviderError):
    reason = "parse"


class ConfigError(ProviderError):
    """The provider cannot run with its configuration (e.g. the key file is unreadable)."""

    reason = "config"


ERROR_REASONS: tuple[str, ...] = ("auth", "rate_limit", "upstream", "timeout", "parse", "config")
