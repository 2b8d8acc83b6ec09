"""Analytics over the stored history: windows, ratios (later: baselines, forecasts)."""
