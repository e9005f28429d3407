"""Every ``llama_cpp.Llama`` evo makes is made here, with the same settings.

- ``verbose=False``: llama.cpp's load log would bury the CLI's one-line answers.
- The KV cache in f32 (``type_k=0, type_v=0``, ggml's F32): llama.cpp's default f16 cache
  drifts ~6e-3 in the logits on the demo model, enough to flip near-tied greedy choices, so an
  exact comparison with transformers (the parity check, shadow comparisons) needs f32.
- ``use_mmap=False``: the weights are read into memory once. A loaded generation then never
  depends on its file again (a re-export replacing ``model.gguf``, or a pruned archive, cannot
  change or fault a model that is serving).
- No "extra buffer types" (``use_extra_bufts=False``): llama.cpp otherwise repacks quantized
  weights for the CPU's special units, and its AMX path (Sapphire Rapids and later, this machine
  included) segfaults on batched Q8_0 matmuls of small models (llama.cpp issues #20824,
  #19184). llama-cpp-python exposes no argument for it, so the default model parameters are
  wrapped for the duration of the construction (under a lock). f32 and f16 weights never used
  those buffers; quantized ones run the plain CPU kernels.
"""

from __future__ import annotations

import os
import threading
from typing import Any

GGML_TYPE_F32 = 0
_CONSTRUCT = threading.Lock()


def load_llama(
    gguf_path: str | os.PathLike[str],
    *,
    n_ctx: int = 256,
    n_threads: int | None = None,
    logits_all: bool = False,
    seed: int = 0,
) -> Any:
    """A ``llama_cpp.Llama`` for ``gguf_path`` (f32 KV cache, no mmap, quiet)."""
    import llama_cpp.llama_cpp as C
    from llama_cpp import Llama

    with _CONSTRUCT:
        defaults = C.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = defaults()
            params.use_extra_bufts = False
            return params

        C.llama_model_default_params = without_extra_buffers
        try:
            return Llama(
                model_path=os.fspath(gguf_path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                # prompt processing on as many threads as generation, not llama.cpp's default
                # of every core: on a busy machine ggml's barriers then wait on a descheduled
                # peer (measured on 2 cores, load 4: 0.35 ms -> 11 ms mean per short answer)
                n_threads_batch=n_threads,
                logits_all=logits_all,
                seed=seed,
                type_k=GGML_TYPE_F32,
                type_v=GGML_TYPE_F32,
                use_mmap=False,
                verbose=False,
            )
        finally:
            C.llama_model_default_params = defaults
