"""The calibration profile's hidden-state probe on llama.cpp: one layer's output, read while it computes.

llama.cpp's API hands out the logits (and the last layer's embeddings), not intermediate hidden
states. It does let a context observe the tensors of its compute graph: the ``cb_eval`` callback of
the context parameters is asked, node by node, whether a tensor is wanted, and is called again
with each wanted tensor once it is computed (what llama.cpp's own ``eval-callback`` and ``imatrix``
tools use). :class:`HiddenCapture` wants one tensor, ``l_out-<i>``: the output of layer ``i`` (the
residual stream after the block), which is ``hidden_states[i + 1]`` in transformers, the very
vector the profile's probe was fitted on (``ProbeSpec.layer`` indexes ``hidden_states``; 0, the
embeddings, has no ``l_out`` and gets no probe). It copies the tensor out with
``ggml_backend_tensor_get``, so it works whatever backend computed it.

The callback costs a Python call per graph node (about 940 for SmolLM2's 30 layers): measured 5 %
of a single stream's decode and 1 % of a batch of 8 (bench/llamacpp.py); it is installed only
when the model's profile has a probe.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Probe:
    """A profile's probe as this engine applies it: ``weights · h`` with ``h`` the output of layer
    ``layer - 1`` at the position a token was chosen from."""

    layer: int  # index into transformers' hidden_states (1 = the first layer's output)
    weights: NDArray[np.float32]

    def project(self, hidden: NDArray[np.float32]) -> float:
        return float(np.dot(hidden.astype(np.float64), self.weights.astype(np.float64)))


def probe_for(name: str, n_layer: int, n_embd: int, profiles_dir: str = "") -> Probe | None:
    """The probe of the profile of model ``name``, when it has one that fits this model (else None)."""
    from services.alerter import profile

    found = profile.for_model(name, profiles_dir)
    spec = found.probe if found is not None else None
    if spec is None:
        return None
    if not 1 <= spec.layer <= n_layer or len(spec.weights) != n_embd:
        log.warning(
            "the calibration profile's probe does not fit this model on llama.cpp; no probe",
            extra={"profile": found.id if found else None, "layer": spec.layer, "n_embd": n_embd},
        )
        return None
    return Probe(spec.layer, np.asarray(spec.weights, dtype=np.float32))


class HiddenCapture:
    """Copies the output of one layer out of every ``llama_decode`` while ``armed``.

    Give :attr:`callback` and ``None`` as the context's ``cb_eval`` and ``cb_eval_user_data``; after a
    decode, :attr:`rows` holds that layer's hidden state for each token of the batch (one row per
    token, in the order the context computed them), or None when nothing was captured.
    """

    def __init__(self, layer_index: int, n_embd: int) -> None:
        import llama_cpp

        self.name = f"l_out-{layer_index}".encode()
        self.n_embd = n_embd
        self.armed = False
        self.rows: NDArray[np.float32] | None = None
        self._ggml = _ggml_base()
        # kept on the object: the C side holds only a pointer to it
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._observe)

    def _observe(self, tensor: int, ask: bool, _user_data: Any) -> bool:
        if ask:
            return self.armed and self._ggml.ggml_get_name(tensor) == self.name
        n = int(self._ggml.ggml_nelements(tensor))
        out = np.empty(n, dtype=np.float32)
        self._ggml.ggml_backend_tensor_get(tensor, out.ctypes.data, 0, n * 4)
        rows = out.reshape(-1, self.n_embd)  # a decode split into micro-batches calls once per micro-batch
        self.rows = rows if self.rows is None else np.concatenate([self.rows, rows])
        return True  # go on computing


_GGML: Any = None


def _ggml_base() -> Any:
    """ggml's base library as llama-cpp-python ships it, with the three functions the capture calls."""
    global _GGML
    if _GGML is None:
        import llama_cpp

        lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_get_name.argtypes = [ctypes.c_void_p]
        lib.ggml_nelements.restype = ctypes.c_int64
        lib.ggml_nelements.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_tensor_get.restype = None
        lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        _GGML = lib
    return _GGML
