"""FinOps outputs from the stored history: one module per command.

* :mod:`exporter.finops.focus`     ``focus``: FOCUS 1.2 rows, one per stream, cost type and day
* :mod:`exporter.finops.report`    ``report``: showback/chargeback of a month
* :mod:`exporter.finops.backfill`  ``backfill``: OpenMetrics files for ``promtool tsdb
  create-blocks-from openmetrics`` (the published series over the stored history)
* :mod:`exporter.finops.whatif`    ``whatif``: a monthly projection of a scenario

Every command reads the history (opened read-only by the composition root) and never
writes it; none touches the network (FX rates come from the cache in the history and the
bundled ECB history, prices from the bundled genai-prices catalogue).
"""
