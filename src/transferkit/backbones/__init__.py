"""Pre-trained encoders behind one contract (:class:`Backbone`) and one factory (:func:`create_backbone`)."""

from transferkit.backbones.base import Backbone, hash_state_dict
from transferkit.backbones.catalog import BACKBONES, DEFAULT_TEXT_BACKBONE, create_backbone, is_installed

__all__ = ["BACKBONES", "DEFAULT_TEXT_BACKBONE", "Backbone", "create_backbone", "hash_state_dict", "is_installed"]
