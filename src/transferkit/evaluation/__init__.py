"""Metrics and their presentation."""

from transferkit.evaluation.metrics import compute_metrics, headline_metric, metrics_table

__all__ = ["compute_metrics", "headline_metric", "metrics_table"]
