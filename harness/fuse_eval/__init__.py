"""``fuse run`` with an ``evaluate`` section: after training, a CLM-only control, evaluation
of every model, the comparison report and a regression gate (``stage.evaluate_fusion``)."""
