"""The provider protocol and the HTTP side every provider shares.

A provider only translates its HTTP API into :mod:`exporter.records`. It gets an injected
``httpx.Client`` (tests and the demo point it at a fake server on loopback), never touches
SQLite or metrics, and raises the typed errors of :mod:`exporter.providers.errors`; the
poller maps ``reason`` to the ``aicost_poll_errors_total{reason}`` label.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.nap import sleep as tenacity_sleep

from exporter.config import ProviderConfig, Secret
from exporter.providers.errors import (
    AuthError,
    ClientError,
    ParseError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    UpstreamError,
)
from exporter.providers.parse import json_field
from exporter.records import FetchResult

log = logging.getLogger(__name__)

MAX_PAGES = 10_000  # a cursor loop guard, far above any real window
MAX_REPEATED_PAGES = 3  # pages in a row holding only days already read: paging is stuck

# Called once per HTTP exchange with (endpoint, code); code is the HTTP status as a string,
# or "timeout" / "error" when no response arrived.
RequestObserver = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries inside one poll: 429 honours Retry-After, 5xx/timeouts back off with jitter."""

    max_attempts: int = 4
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 300.0  # a longer Retry-After fails the poll; next cycle retries
    sleep: Callable[[float], None] | None = None  # injected in tests; default time.sleep

    def wait_for(self, attempt: int, error: BaseException | None) -> float:
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)  # full jitter


T = TypeVar("T")


def with_retries(policy: RetryPolicy, label: str, call: Callable[[], T]) -> T:
    """Run ``call`` (one request) under ``policy``: retryable :class:`ProviderError`s are
    tried again (429 after its Retry-After, unless longer than ``max_retry_after``)."""

    def should_retry(exc: BaseException) -> bool:
        if not isinstance(exc, ProviderError) or not exc.retryable:
            return False
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return exc.retry_after <= policy.max_retry_after
        return True

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        seconds = policy.wait_for(state.attempt_number, exc)
        log.warning(
            "%s failed (%s), retrying in %.1fs (attempt %d of %d)",
            label,
            exc,
            seconds,
            state.attempt_number,
            policy.max_attempts,
        )
        return seconds

    retrying = Retrying(
        retry=retry_if_exception(should_retry),
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        reraise=True,
        sleep=policy.sleep or tenacity_sleep,
    )
    return retrying(call)


class Provider(Protocol):
    """A provider module's class. Registered by type in :data:`exporter.providers.REGISTRY`."""

    type: ClassVar[str]

    def fetch(self, start: date, end: date) -> FetchResult:
        """Read the UTC days ``[start, end)``; raise a :class:`ProviderError` on failure."""
        ...


class HttpProvider:
    """What the HTTP providers share: the constructor contract and an :class:`ApiClient`.

    A subclass sets ``type`` and :meth:`auth_headers` (and :meth:`error_message` when its
    error bodies have another shape); ``page_size`` (tests) overrides every page size at once.
    ``list_api_keys = False`` (set by the poller): the next fetch skips the API-key listing
    (keys are listed at most once per ``poll.api_keys_interval``; the stored ones stay).
    """

    type: ClassVar[str]
    usage_page_size: ClassVar[int] = 31  # the max for 1d buckets at OpenAI and Anthropic
    cost_page_size: ClassVar[int] = 31
    list_page_size: ClassVar[int] = 100

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
        self.account = config.account
        self.list_api_keys = True
        self._api = ApiClient(
            client,
            config.url,
            self.auth_headers(api_key),
            retry=retry,
            observer=observer,
            error_message=self.error_message,
        )
        self._usage_limit = page_size or self.usage_page_size
        self._cost_limit = page_size or self.cost_page_size
        self._list_limit = page_size or self.list_page_size

    def auth_headers(self, api_key: Secret) -> dict[str, str]:
        """The request headers that carry the credential (never logged)."""
        raise NotImplementedError

    def error_message(self, body: Any) -> str:
        """The provider's own message from an error body (``{"error": {"message": ...}}``
        unless a subclass knows its API's shape)."""
        return _default_error_message(body)


class ApiClient:
    """JSON-over-HTTP with typed errors, request accounting and retries.

    ``headers`` carry the credentials; they are never logged nor put in an error message.
    Numbers in bodies are parsed as :class:`~decimal.Decimal`, so money stays exact.
    """

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        headers: Mapping[str, str],
        *,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        error_message: Callable[[Any], str] | None = None,
        retry_after_headers: tuple[str, ...] = ("retry-after",),
    ) -> None:
        """``retry_after_headers``: where a 429's wait is read, first present wins (an API
        may have its own header besides the standard one)."""
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = dict(headers)
        self._retry = retry or RetryPolicy()
        self._observe = observer or (lambda endpoint, code: None)
        self._error_message = error_message or _default_error_message
        self._retry_after_headers = retry_after_headers

    def request_json(
        self,
        method: str,
        endpoint: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        return with_retries(
            self._retry,
            f"{method} {endpoint}",
            lambda: self._once(method, endpoint, path, params, body),
        )

    def get_json(self, endpoint: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request_json("GET", endpoint, path, params)

    def pages(
        self, endpoint: str, path: str, params: Mapping[str, Any]
    ) -> Iterator[tuple[dict[str, Any], str]]:
        """Walk ``has_more``/``next_page`` cursor paging (sent back as ``page=<cursor>``).

        Yields each page with its location for error messages (``"costs page 2"``).
        """
        cursor: str | None = None
        seen: set[str] = set()
        for page_no in range(MAX_PAGES):
            page = self.get_json(endpoint, path, {**params, **({"page": cursor} if cursor else {})})
            where = f"{endpoint} page {page_no + 1}"
            if not isinstance(page, dict):
                raise ParseError(f"{where}: expected a JSON object")
            yield page, where
            if not json_field(page, "has_more", bool, where):
                return
            cursor = page.get("next_page")
            if not isinstance(cursor, str) or not cursor:
                raise ParseError(f"{where}: has_more is true but next_page is missing")
            if cursor in seen:
                raise ParseError(f"{where}: next_page repeats a cursor already followed")
            seen.add(cursor)
        raise ParseError(f"{endpoint}: more than {MAX_PAGES} pages")

    def bucket_results(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, Any],
        day_of: Callable[[Any, str], date],
    ) -> Iterator[tuple[date, dict[str, Any], str]]:
        """Walk pages of time buckets (``data[].results[]``, the usage and cost report shape).

        Yields (bucket day, result, location for errors); ``day_of(bucket, where)`` reads a
        bucket's day in the provider's own time format.

        Each day's bucket is read at most once per walk, whatever the cursors say: a page
        whose cursor leads back to buckets already read (under another cursor string) would
        otherwise add those days twice. A repeated bucket identical to the first reading is
        dropped (logged); one that differs, or more than :data:`MAX_REPEATED_PAGES` pages
        in a row holding nothing new, cannot be resolved and fails the walk (nothing of the
        poll is stored).
        """
        seen: dict[date, str] = {}
        repeated_pages = 0
        for page, where in self.pages(endpoint, path, params):
            data = json_field(page, "data", list, where)
            fresh = 0
            for b_no, bucket in enumerate(data):
                bwhere = f"{where} data[{b_no}]"
                day = day_of(bucket, bwhere)
                results = json_field(bucket, "results", list, bwhere)
                if _repeated(seen, day, bucket, bwhere):
                    continue
                fresh += 1
                for r_no, result in enumerate(results):
                    if not isinstance(result, dict):
                        raise ParseError(f"{bwhere}.results[{r_no}]: expected an object")
                    yield day, result, f"{bwhere}.results[{r_no}]"
            repeated_pages = repeated_pages + 1 if data and not fresh else 0
            if data and len(data) > fresh:
                log.warning(
                    "%s: %d bucket(s) repeat days already read under another page cursor; "
                    "the repeats are identical and are not counted again",
                    where,
                    len(data) - fresh,
                )
            if repeated_pages > MAX_REPEATED_PAGES:
                raise ParseError(
                    f"{where}: {repeated_pages} pages in a row only repeat days already read; "
                    "the paging does not advance"
                )

    def list_items(
        self, endpoint: str, path: str, params: Mapping[str, Any], after_param: str = "after"
    ) -> Iterator[dict[str, Any]]:
        """Walk list paging: ``data`` + ``has_more``, next page from ``<after_param>=<last_id>``."""
        after: str | None = None
        ids: set[str] = set()
        repeated_pages = 0
        for page_no in range(MAX_PAGES):
            page = self.get_json(
                endpoint, path, {**params, **({after_param: after} if after else {})}
            )
            where = f"{endpoint} page {page_no + 1}"
            items = json_field(page, "data", list, where)
            fresh = 0
            for item in items:
                if not isinstance(item, dict):
                    raise ParseError(f"{where}: list entries must be objects")
                item_id = item.get("id")
                if isinstance(item_id, str) and item_id in ids:
                    continue  # a page repeated under another cursor: each id once
                if isinstance(item_id, str):
                    ids.add(item_id)
                fresh += 1
                yield item
            repeated_pages = repeated_pages + 1 if items and not fresh else 0
            if repeated_pages > MAX_REPEATED_PAGES:
                raise ParseError(
                    f"{where}: {repeated_pages} pages in a row only repeat ids already read; "
                    "the paging does not advance"
                )
            if not page.get("has_more"):
                return
            last = page.get("last_id") or (items[-1].get("id") if items else None)
            if not isinstance(last, str) or not last or last == after:
                raise ParseError(f"{where}: has_more is true but last_id does not advance")
            after = last
        raise ParseError(f"{endpoint}: more than {MAX_PAGES} pages")

    def _once(
        self,
        method: str,
        endpoint: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
    ) -> Any:
        url = self._base + path
        try:
            response = self._client.request(
                method, url, params=params, json=body, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            self._observe(endpoint, "timeout")
            raise ProviderTimeout(
                f"{endpoint}: no response in time ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            self._observe(endpoint, "error")
            raise UpstreamError(f"{endpoint}: {type(exc).__name__}: cannot reach the API") from None
        self._observe(endpoint, str(response.status_code))
        status = response.status_code
        if status >= 400:
            detail = self._error_message(_safe_json(response))
            where = f"{endpoint}: HTTP {status}"
            message = f"{where}: {detail}" if detail else where
            if status in (401, 403):
                raise AuthError(message + " (check the admin key and its scopes)")
            if status == 429:
                wait = next(
                    (
                        response.headers[h]
                        for h in self._retry_after_headers
                        if h in response.headers
                    ),
                    None,
                )
                raise RateLimitError(message, _retry_after(wait))
            if status >= 500:
                raise UpstreamError(message, status)
            raise ClientError(message, status)
        if status == 204:
            return None  # "no content": an empty result (Azure Cost Management)
        try:
            return json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"{endpoint}: response is not valid JSON ({exc})") from None


def _repeated(seen: dict[date, str], day: date, bucket: Any, where: str) -> bool:
    """True when ``day``'s bucket was read already with the same content; a different
    content for a day already read is a :class:`ParseError` (which one is right?)."""
    fingerprint = json.dumps(bucket, sort_keys=True, default=_number_text)
    if day not in seen:
        seen[day] = fingerprint
        return False
    if seen[day] == fingerprint:
        return True
    raise ParseError(
        f"{where}: the bucket of {day} was read already with other values (a page "
        "repeated under another cursor); not storing a window that may count a day twice"
    )


def _number_text(value: Any) -> str:
    """A Decimal by its value (``1.50`` and ``1.5`` are the same amount)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def _safe_json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _default_error_message(body: Any) -> str:
    """The provider's own message from an error body, e.g. ``{"error": {"message": ...}}``."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
    return ""


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff
    return max(seconds, 0.0)
