"""Figures for the research notebooks: functions that take arrays or records and return a matplotlib Figure.

They build `matplotlib.figure.Figure` objects directly (no pyplot state): a notebook shows
the returned figure, a script saves it with `fig.savefig(path)`. One module per notebook topic.
"""
