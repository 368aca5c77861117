"""Running Stan: the programs, two engines (PyStan, CmdStan), the terminal, and ArviZ output."""

from surrogate.inference.engines import ENGINES, engine_status, get_engine
from surrogate.inference.fit import SamplerSettings, StanFit
from surrogate.inference.idata import arviz_plotting, import_arviz, to_inference_data

__all__ = ["ENGINES", "SamplerSettings", "StanFit", "arviz_plotting", "engine_status", "get_engine", "import_arviz", "to_inference_data"]
