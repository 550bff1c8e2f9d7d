"""The providers a stage acts through, by name (treadle.providers.registry), behind one
seam (treadle.providers.base)."""

from treadle.providers.registry import REGISTRY, choose, open_provider, settings_for

__all__ = ["REGISTRY", "choose", "open_provider", "settings_for"]
