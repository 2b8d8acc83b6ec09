"""Request-level usage pushed by applications, parsed into :class:`RequestRecord` rows.

* :mod:`exporter.ingest.otlp`: OTLP/HTTP ``ExportTraceServiceRequest`` bodies (protobuf or
  OTLP JSON) whose spans carry OpenTelemetry GenAI usage attributes;
* :mod:`exporter.ingest.events`: a JSON array or NDJSON of plain request events;
* :mod:`exporter.ingest.attributes`: which attribute each dimension is read from.

A leaf: it reads bytes and the config and returns records and rejections; pricing,
storage and HTTP live elsewhere (:mod:`exporter.intake`, :mod:`exporter.server`).
"""

from __future__ import annotations

from exporter.ingest.attributes import Parsed, Rejection

__all__ = ["Parsed", "Rejection"]
