"""Test oracles: the expected answers, computed straight from a fake org's day-grain truth.

One module per fake provider (``exporter.demo.openai``, ``.anthropic``, ``.xai``). They read
only the fakes' public rows and fields, never the exporter's code, so a test compares the
exporter's numbers with an independent sum.
"""
