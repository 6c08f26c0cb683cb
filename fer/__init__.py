"""fer-data: reproducible curation of facial-expression-recognition datasets."""

from fer.errors import FerDataError

__all__ = ["FerDataError", "__version__"]
__version__ = "0.1.0"
