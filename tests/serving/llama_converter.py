"""Run llama.cpp's own ``convert_hf_to_gguf.py`` (fetched by the Makefile into
``.venv/llama.cpp``) on a folder, and compare two GGUF files key by key and tensor by tensor.

The converter recognises a BPE pre-tokenizer by hashing the ids of a probe text, which only
matches the published vocabularies; for the tokenizers the tests train locally it is told the
pre-tokenizer evo recognised by its regex (``EVO_GGUF_PRE``), the one documented difference.
Run as a script: ``python llama_converter.py CONVERTER_DIR MODEL_DIR OUT PRE``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CONVERTER = Path(sys.prefix) / "llama.cpp"


def convert(model_dir: Path, out: Path, pre: str, outtype: str = "f32") -> Path:
    """The converter's GGUF of ``model_dir`` at ``out`` (a subprocess: the converter imports
    its own copy of ``gguf``)."""
    if not (CONVERTER / "convert_hf_to_gguf.py").is_file():
        raise RuntimeError(f"no llama.cpp converter in {CONVERTER}: run `make test` (it fetches it)")
    subprocess.run(
        [sys.executable, __file__, str(CONVERTER), str(model_dir), str(out), pre, outtype],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return out


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(fields, tensors)``: every key's value (strings decoded, arrays as lists) and every
    tensor as ``(type, shape, data as numpy)``."""
    import gguf

    reader = gguf.GGUFReader(path)
    fields: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        fields[name] = field.contents()
    tensors = {t.name: (t.tensor_type.name, tuple(int(x) for x in t.shape), t.data.copy()) for t in reader.tensors}
    return fields, tensors


def _main() -> None:
    converter, model_dir, out, pre, outtype = sys.argv[1:6]
    sys.path.insert(0, converter)
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", out, "--outtype", outtype]
    os.chdir(converter)
    import conversion.base as base

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:  # a locally trained vocabulary: its hash is nobody's
            return pre

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre  # type: ignore[method-assign]
    import runpy

    runpy.run_path(os.path.join(converter, "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    _main()
