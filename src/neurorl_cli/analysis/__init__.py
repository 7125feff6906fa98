"""Figures computed from stored runs and rollouts.

One module per figure family. Each figure function takes DataFrames or arrays and writes
PNG (for the page), SVG (beside it) and CSV (the figure's data) through `figures.save`.
Matplotlib is used only through the Agg canvas, so no display is ever needed.
"""
