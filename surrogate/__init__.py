"""surrogate: train a decoder in PyTorch, use it as a fast prior in Stan."""

__version__ = "0.1.0"
