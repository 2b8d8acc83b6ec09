"""One module per generated Grafana dashboard, built from the panel library in lib."""
