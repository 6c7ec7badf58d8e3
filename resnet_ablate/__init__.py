"""resnet-ablate: plain vs residual networks of He et al. (2015), built, counted and trained
under the paper's protocol."""
from .complexity import complexity
from .registry import create_model, get_spec, list_models
from .spec import VariantSpec
from . import timm_models  # noqa: F401  registers every variant with timm as ra_<name>

__version__ = "0.1.0"
__all__ = ["complexity", "create_model", "get_spec", "list_models", "VariantSpec",
           "__version__"]
