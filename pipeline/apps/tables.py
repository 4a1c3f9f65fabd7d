"""Moved to ``stakelearn.tables``; kept only for the benches, the robustness sweep and gas, which
still import it from here until they move to ``pipeline.experiments``. Import
``stakelearn.tables.markdown_table`` instead."""

from stakelearn.tables import markdown_table

__all__ = ["markdown_table"]
