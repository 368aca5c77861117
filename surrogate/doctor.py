"""``surrogate doctor``: what this machine offers the toolkit."""

from __future__ import annotations

import platform

from surrogate.errors import SurrogateError


def report(data_dir=None) -> str:
    import torch

    from surrogate import __version__
    from surrogate.data.mnist import resolve_data_dir
    from surrogate.inference import engine_status, get_engine
    from surrogate.nn.train import select_device

    lines = [
        f"surrogate     {__version__}",
        f"python        {platform.python_version()} ({platform.platform()})",
        f"torch         {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})",
        f"device        {select_device('auto')} would be used for training",
    ]
    try:
        import torchvision

        lines.append(f"torchvision   {torchvision.__version__} (imports; optional)")
    except Exception as exc:  # the CUDA wheel fails to import beside a CPU torch
        lines.append(f"torchvision   not usable ({type(exc).__name__}); optional, not needed")
    for name, state in engine_status().items():
        lines.append(f"stan engine   {name}: {state}")
    try:
        lines.append(f"engine auto   {get_engine('auto').name}")
    except SurrogateError as exc:
        lines.append(f"engine auto   none usable: {exc}")
    for dataset in ("mnist", "fashion-mnist"):
        try:
            folder, source = resolve_data_dir(dataset, data_dir if dataset == "mnist" else None)
            lines.append(f"{dataset:<13} {folder} ({source})")
        except SurrogateError as exc:
            lines.append(f"{dataset:<13} {exc}")
    return "\n".join(lines)
