"""Each lesson's experiment: drivers, cached runs, data recipes and widget figures, one module per notebook.

These modules import from the method modules of :mod:`mmlab`; no method module imports them.
"""
