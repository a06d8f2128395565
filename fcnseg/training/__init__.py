"""Training (paper §3.4, §4.3): whole images or crops, end to end, resumable exactly.

* :mod:`.config`: :class:`TrainConfig`, every setting once (flags, YAML and the API),
  checked by :mod:`.checks`;
* :mod:`.setup`: building a run from its settings (data, model, loss, optimiser, loader);
* :mod:`.loop`: epochs and validation (:func:`train`); :mod:`.step`: one optimiser step;
  :mod:`.fastest`: that step in bf16 and compiled, where it measures faster;
* :mod:`.checkpoints`: ``last.safetensors`` written and restored; :mod:`.interrupt`: Ctrl-C;
* :mod:`.state`: :class:`TrainState`, the one thing checkpointed and restored;
* :mod:`.loss`, :mod:`.optim`: the per-pixel loss, the optimiser and the schedule;
* :mod:`.runlog`: the console and the run directory's logs;
* :mod:`.distributed`: processes under torchrun and reproducible randomness.

Owns: turning data and a model into trained weights. May import: models, data, evaluation
(validation), files (checkpoints), device.
"""

from .config import TrainConfig
from .loop import Trainer, train
from .state import TrainState
from .transfer import Transfer, init_from

__all__ = ["TrainConfig", "TrainState", "Trainer", "Transfer", "init_from", "train"]
