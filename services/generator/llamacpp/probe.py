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

llama.cpp asks the callback about every graph node (about 940 per decode for SmolLM2's 30 layers).
As a Python callback that cost about 5 % of a single stream's speed (1 % of a batch of 8), so the
set-up compiles the same few lines in C (capture.c, ``setup_llama_capture`` in scripts/setup.sh);
without a C compiler the Python callback is used. Either is installed only when the model's
profile has a probe.
"""

from __future__ import annotations

import ctypes
import logging
import sys
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
    # hidden_states[n_layer] is after the final norm in transformers, and llama.cpp's last l_out before it
    if not 1 <= spec.layer < n_layer or len(spec.weights) != n_embd:
        log.warning(
            "the calibration profile's probe does not fit this model on llama.cpp; no probe",
            extra={"profile": found.id if found else None, "layer": spec.layer, "n_embd": n_embd},
        )
        return None
    return Probe(spec.layer, np.asarray(spec.weights, dtype=np.float32))


class _State(ctypes.Structure):
    """``struct uq_capture`` of capture.c."""

    _fields_ = [
        ("name", ctypes.c_char * 64),
        ("armed", ctypes.c_int32),
        ("out", ctypes.POINTER(ctypes.c_float)),
        ("capacity", ctypes.c_int64),
        ("filled", ctypes.c_int64),
    ]


class HiddenCapture:
    """Copies the output of one layer out of every ``llama_decode`` while armed.

    Give :attr:`callback` and :attr:`user_data` as the context's ``cb_eval`` and
    ``cb_eval_user_data``; after a decode, :attr:`rows` holds that layer's hidden state for each token
    of the batch (one row per token, in the order the context computed them), or None when nothing
    was captured. The callback is capture.c's, built at set-up, or the same logic in Python.
    """

    def __init__(self, layer_index: int, n_embd: int, max_tokens: int) -> None:
        import llama_cpp

        self.n_embd = n_embd
        self._buffer = np.zeros(max_tokens * n_embd, dtype=np.float32)
        self._state = _State(
            name=f"l_out-{layer_index}".encode(),
            armed=0,
            out=self._buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            capacity=self._buffer.shape[0],
            filled=0,
        )
        native = _native()
        self.native = native is not None
        if native is not None:
            self.callback = ctypes.cast(native.uq_capture_observe, llama_cpp.ggml_backend_sched_eval_callback)
            self.user_data: Any = ctypes.cast(ctypes.pointer(self._state), ctypes.c_void_p)
        else:  # kept on the object: the C side holds only a pointer to it
            self._ggml = _ggml_base()
            self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._observe)
            self.user_data = None

    def arm(self, armed: bool) -> None:
        """Capture in the next decode (or not), and forget the last one's rows."""
        self._state.armed = int(armed)
        self._state.filled = 0

    @property
    def rows(self) -> NDArray[np.float32] | None:
        filled = int(self._state.filled)
        if filled <= 0:
            return None
        return self._buffer[:filled].reshape(-1, self.n_embd).copy()

    def _observe(self, tensor: int, ask: bool, _user_data: Any) -> bool:
        state = self._state
        if ask:
            return bool(state.armed) and self._ggml.ggml_get_name(tensor) == state.name
        n = int(self._ggml.ggml_nelements(tensor))
        if state.filled < 0 or state.filled + n > state.capacity or self._ggml.ggml_nbytes(tensor) != 4 * n:
            state.filled = -1  # computed once per micro-batch; more than fits, or not f32: none
            return True
        out = self._buffer[state.filled : state.filled + n]
        self._ggml.ggml_backend_tensor_get(tensor, out.ctypes.data, 0, n * 4)
        state.filled += n
        return True  # go on computing


#: Where set-up builds capture.c (scripts/setup.sh, setup_llama_capture).
NATIVE_PATH = Path(sys.prefix) / "lib" / "uq" / "libuq-llama-capture.so"
_NATIVE: Any = False
_GGML: Any = None


def _native() -> Any:
    """capture.c's library when set-up built it (else None: the Python callback is used)."""
    global _NATIVE
    if _NATIVE is False:
        _NATIVE = None
        if NATIVE_PATH.is_file():
            try:
                lib = ctypes.CDLL(str(NATIVE_PATH))
                lib.uq_capture_observe.restype = ctypes.c_bool
                lib.uq_capture_observe.argtypes = [ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p]
                _NATIVE = lib
            except OSError as exc:
                log.warning("the probe's C callback does not load; using the Python one", extra={"error": str(exc)})
    return _NATIVE


def _ggml_base() -> Any:
    """ggml's base library as llama-cpp-python ships it, with the functions the capture calls."""
    global _GGML
    if _GGML is None:
        import llama_cpp

        lib = ctypes.CDLL(str(next((Path(llama_cpp.__file__).parent / "lib").glob("libggml-base.*"))))
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_get_name.argtypes = [ctypes.c_void_p]
        lib.ggml_nelements.restype = ctypes.c_int64
        lib.ggml_nelements.argtypes = [ctypes.c_void_p]
        lib.ggml_nbytes.restype = ctypes.c_size_t
        lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_tensor_get.restype = None
        lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        _GGML = lib
    return _GGML
