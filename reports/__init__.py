"""Reading run directories and rendering them: leaderboards, comparisons, model cards.

Imports nothing of ``fusion``, nor of ``harness`` (the harness imports reports).
"""
