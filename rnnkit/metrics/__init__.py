"""Metrics, one module per task family (forecast, text, classify, speech)."""
