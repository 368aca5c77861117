"""The Python API (``import surrogate as sg``): train, load, check and fit; the CLI is a thin layer over the same tasks."""
