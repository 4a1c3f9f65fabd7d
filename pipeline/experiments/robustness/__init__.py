"""The robustness sweep on the numpy reference: simulation, statistics, the sweep, the report."""
