"""Benchmark definitions (lm-eval YAML plus helpers) and the loaders behind them.

This package imports none of the other fusebench packages.
"""
