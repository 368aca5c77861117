"""Many independent fits at once on dask.distributed: ``spec`` (what to run), ``worker`` (one task), ``runner`` (the batch)."""

from surrogate.batch.runner import run_batch
from surrogate.batch.spec import COMMANDS, Task, build_tasks, load_tasks

__all__ = ["COMMANDS", "Task", "build_tasks", "load_tasks", "run_batch"]
