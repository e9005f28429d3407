"""Put llama.cpp's own HF-to-GGUF converter beside the venv, for the tests that compare evo's
export with it: ``python scripts/fetch_llama_converter.py DEST``.

The converter (``convert_hf_to_gguf.py``, its ``conversion`` package and its ``gguf-py``) ships
in llama-cpp-python's source package, not in the installed wheel; this downloads that source
package of the pinned version (``constraints.txt``) through pip (the package registry, or pip's
cache) and extracts only those files. It is a set-up step like ``pip install``; evo itself
never runs the converter.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def pinned_version() -> str:
    text = (ROOT / "constraints.txt").read_text()
    match = re.search(r"^llama-cpp-python==(\S+)", text, re.M)
    if match is None:
        sys.exit("constraints.txt pins no llama-cpp-python version")
    return match.group(1)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: fetch_llama_converter.py DEST", file=sys.stderr)
        return 2
    dest = Path(sys.argv[1])
    version = pinned_version()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, f"llama-cpp-python=={version}"],
            check=True,
        )
        (sdist,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
        staging = Path(tmp) / "out"
        with tarfile.open(sdist) as tar:
            prefix = f"{tar.getnames()[0].split('/')[0]}/vendor/llama.cpp/"
            members = [
                m for m in tar.getmembers()
                if m.name.startswith(prefix) and m.name[len(prefix):].startswith(WANTED) and (m.isfile() or m.isdir())
            ]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(staging, members=members, filter="data")
        if not (staging / "convert_hf_to_gguf.py").is_file():
            sys.exit(f"{sdist.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
        (staging / "VERSION").write_text(f"llama-cpp-python {version}\n")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(staging), dest)
    print(f"llama.cpp converter of llama-cpp-python {version} in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
