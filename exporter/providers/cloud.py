"""What the SDK-based cloud providers (``bedrock``, ``vertex``) share.

They keep the provider constructor contract of :class:`~exporter.providers.http.HttpProvider`
(the poller builds every provider the same way) but call their cloud through its own SDK,
imported lazily from the optional extra: the injected ``httpx.Client`` only gives the
timeout, and ``api_key`` is unused (credentials come from the cloud's own chain). The
SDK's retries are switched off so :class:`~exporter.providers.http.RetryPolicy` applies and
each HTTP exchange is counted once.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar, cast

import httpx

from exporter.config import ProviderConfig, Secret
from exporter.providers.errors import ConfigError
from exporter.providers.http import RequestObserver, RetryPolicy
from exporter.records import CostRecord

C = TypeVar("C", bound=ProviderConfig)

# The SDKs log whole requests (signed headers, access key ids, tokens) at DEBUG: those
# loggers stay at WARNING whatever the exporter's log level, so no credential is logged.
SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3", "google.auth", "google.cloud",
               "google.api_core", "requests")  # fmt: skip


def quiet_sdk_loggers() -> None:
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


class CloudProvider(Generic[C]):
    """A subclass sets ``type`` and ``config_class`` and sets its SDK up in :meth:`_start`."""

    config_class: ClassVar[type[ProviderConfig]]  # before `type`, which shadows the builtin
    type: ClassVar[str]

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.Client,
        api_key: Secret,
        *,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        page_size: int | None = None,
    ) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        if (extra := config.missing_extra()) is not None:  # the extra to install, at run time
            raise ConfigError(
                f"providers[{config.account}]: the {config.type} provider needs the optional "
                f"extra: pip install 'ai-cost-exporter[{extra}]'"
            )
        self.account = config.account
        self._config = cast(C, config)
        self._retry = retry or RetryPolicy()
        self._observe: RequestObserver = observer or (lambda endpoint, code: None)
        self._page_size = page_size
        self._timeout = client.timeout.read or 30.0
        quiet_sdk_loggers()
        self._start()

    def _start(self) -> None:
        """Create the SDK clients (lazy imports of the extra)."""

    def _cost_line(
        self,
        day: date,
        project: str,
        model: str,
        token_type: str,
        amount: Decimal,
        currency: str,
        line_item: str,
    ) -> CostRecord:
        """A billed line: a model's tokens when it names a model and a token type, else
        ``cost_type="other"`` with ``model=""`` (its money kept, never dropped)."""
        tokens = bool(model and token_type)
        return CostRecord(
            provider=self.type,
            account=self.account,
            day=day,
            project=project,
            model=model if tokens else "",
            cost_type="tokens" if tokens else "other",
            amount=amount,
            currency=currency,
            line_item=line_item,
            token_type=token_type if tokens else "",
            attribution="line_item" if tokens else "unattributed",
        )
