"""The provider registry: an explicit dict from config ``type`` to provider class.

This is the one list of provider types (the config union in :mod:`exporter.config` is
held equal to it by a test). Adding a provider: its module here, translating its API into
:mod:`exporter.records`; its config class (with its default base URL) in
:mod:`exporter.config`; its entry below; its fake in :mod:`exporter.demo`. See
``docs/adding-a-provider.md``; the reference implementation is ``openai.py``.
"""

from __future__ import annotations

from exporter.providers.anthropic import AnthropicProvider
from exporter.providers.azure_openai import AzureOpenAIProvider
from exporter.providers.bedrock import BedrockProvider
from exporter.providers.http import Provider
from exporter.providers.openai import OpenAIProvider
from exporter.providers.vertex import VertexProvider
from exporter.providers.xai import XAIProvider

REGISTRY: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "xai": XAIProvider,
    "azure_openai": AzureOpenAIProvider,
    "bedrock": BedrockProvider,
    "vertex": VertexProvider,
}

__all__ = ["REGISTRY"]
