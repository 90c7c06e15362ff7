"""Evaluation: metrics, baselines, the zero-shot protocol and reports."""
