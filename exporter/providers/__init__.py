"""The provider registry: an explicit dict from config ``type`` to provider class.

Adding a provider: a module here that translates its API into :mod:`exporter.records`,
its entry below, a fake server, tests, a config example block and a docs row
(see ``docs/adding-a-provider.md``; the reference implementation is ``openai.py``).
"""

from __future__ import annotations

from exporter.providers.anthropic import AnthropicProvider
from exporter.providers.openai import OpenAIProvider

REGISTRY = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "xai": "https://management-api.x.ai",
}

__all__ = ["DEFAULT_BASE_URLS", "REGISTRY"]
