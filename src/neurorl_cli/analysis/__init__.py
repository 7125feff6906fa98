"""What every task family draws its analyses with: figures (PNG, SVG and the figure's data as
CSV, through `figures.save`), intervals and stats, training and score curves, prose for the
methods, report sections (`html.Section`, which keeps its data beside its HTML) and GIFs.
Matplotlib is used only through the Agg canvas, so no display is ever needed. Nothing here
imports a family, an engine or the registry.
"""
