"""ai-cost-exporter: AI API spend from the providers' organisation APIs, as Prometheus gauges."""

__version__ = "0.1.0"
