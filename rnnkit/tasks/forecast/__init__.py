"""Forecasting: ``Forecaster`` (task API), ``network`` (the quantile RNN), ``backtest``, ``baselines``."""
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster

__all__ = ["ForecastConfig", "Forecaster"]
