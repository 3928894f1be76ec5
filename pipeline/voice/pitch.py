"""F0 measured by CREPE (torchcrepe, weights bundled): the judge of the clone's intonation.

harvest on WORLD-resynthesised speech jumps octaves at voicing edges, which inflated the
measured F0 spread of the clone; CREPE's Viterbi decoding does not. torchcrepe imports
``resampy`` and ``torchaudio`` at module level but needs neither for 16 kHz arrays, so
stand-ins are installed when the real packages are absent (never install torchaudio from
PyPI here: ../shared/STACK.md).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 16000  # CREPE's own rate
HOP_S = 0.01
F0_FLOOR, F0_CEIL = 60.0, 500.0
PERIODICITY_MIN = 0.5  # frames below this CREPE confidence count as unvoiced


def _stand_in(name: str) -> None:
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    module = types.ModuleType(name)

    def missing(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"{name} is not installed: pass 16 kHz arrays to torchcrepe")

    module.resample = missing  # type: ignore[attr-defined]
    module.load = missing  # type: ignore[attr-defined]
    sys.modules[name] = module


@functools.cache
def _torchcrepe() -> Any:
    for name in ("resampy", "torchaudio"):
        _stand_in(name)
    import torchcrepe

    return torchcrepe


def crepe_f0(samples: npt.NDArray[Any], model: str = "tiny") -> npt.NDArray[Any]:
    """F0 in Hz every 10 ms of 16 kHz speech, 0 where CREPE's periodicity < 0.5 (or silent)."""
    import torch

    tc = _torchcrepe()
    x = torch.from_numpy(np.ascontiguousarray(samples, np.float32))[None]
    with torch.no_grad():
        f0, periodicity = tc.predict(
            x,
            RATE,
            int(HOP_S * RATE),
            F0_FLOOR,
            F0_CEIL,
            model,
            batch_size=512,
            device="cpu",
            return_periodicity=True,
        )
        periodicity = tc.filter.median(periodicity, 3)
        loud = tc.loudness.a_weighted(x, RATE, int(HOP_S * RATE)) > -60.0
    f0, periodicity, loud = f0[0].numpy(), periodicity[0].numpy(), loud[0].numpy()
    n = min(len(f0), len(loud))
    voiced = (periodicity[:n] >= PERIODICITY_MIN) & loud[:n]
    return np.where(voiced, f0[:n], 0.0)
