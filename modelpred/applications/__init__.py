"""Applications of a trained surrogate.

Shapley values of training points are in :mod:`.shapley`, data selection by
them in :mod:`.selection`.

Submodules are imported on use (``from modelpred.applications import
shapley``), so importing this package stays cheap.
"""

__all__ = ["selection", "shapley"]
