"""Build and cache llama-server from the llama.cpp commit that llama-cpp-python vendors.

The batching bench compares Roundhouse's in-process engine with llama.cpp's own
server, so the server must run the same kernels: it is built from the sources inside
the llama-cpp-python sdist that ``uv.lock`` pins, with the CMake settings the wheel
gets (engines/llamacpp/_build.py: every CPU variant as a loadable module, no
-march=native). The result lives under ``.tools/llama-server-<version>/`` and is
reused by later runs; nothing here runs in CI.

At run time the server must also load the *same* CPU variant as the gateway, so
``variant_dir`` makes a directory holding the binary and that one module only:
ggml loads the best-scoring module it finds beside the executable.

    python bench/llama_server.py            # build (minutes), print the binary's path
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.llamacpp._build import cmake_defines

__all__ = ["build", "variant_dir", "vendored_version"]

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"


def vendored_version() -> str:
    """The llama-cpp-python version uv.lock pins: its sdist carries the llama.cpp sources."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for package in lock["package"]:
        if package["name"] == "llama-cpp-python":
            return str(package["version"])
    raise SystemExit("uv.lock pins no llama-cpp-python")


def _sources(version: str) -> Path:
    source = TOOLS / "src" / f"llama_cpp_python-{version}"
    if (source / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return source / "vendor" / "llama.cpp"
    download = TOOLS / "src"
    download.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True, check=False).returncode != 0:
        pip = [str(TOOLS / "bin" / "pip")]
    subprocess.run(
        [
            *pip,
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(download),
            f"llama-cpp-python=={version}",
        ],
        check=True,
    )
    with tarfile.open(download / f"llama_cpp_python-{version}.tar.gz") as archive:
        archive.extractall(download, filter="data")
    return source / "vendor" / "llama.cpp"


def build() -> Path:
    """The llama-server binary, built once per llama-cpp-python version."""
    version = vendored_version()
    out = TOOLS / f"llama-server-{version}"
    binary = out / "bin" / "llama-server"
    if binary.is_file():
        return binary
    source = _sources(version)
    defines = {k: v for k, v in cmake_defines("cpu").items() if k.startswith("GGML_")}
    defines.pop("GGML_BACKEND_DIR", None)  # the modules stay beside the binary
    defines |= {
        "CMAKE_BUILD_TYPE": "Release",
        "LLAMA_BUILD_SERVER": "ON",
        "LLAMA_BUILD_TESTS": "OFF",
        "LLAMA_BUILD_EXAMPLES": "OFF",
        # No network at build time: the web UI would be fetched from a model hub.
        "LLAMA_BUILD_UI": "OFF",
        "LLAMA_USE_PREBUILT_UI": "OFF",
        "LLAMA_OPENSSL": "OFF",
        "LLAMA_CURL": "OFF",
    }
    build_dir = out / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build_dir),
            *generator,
            *(f"-D{k}={v}" for k, v in defines.items()),
        ],
        check=True,
    )
    target = ["--target", "llama-server", "-j"]
    subprocess.run(["cmake", "--build", str(build_dir), *target], check=True)
    built = build_dir / "bin"
    (out / "bin").mkdir(parents=True, exist_ok=True)
    for item in built.iterdir():
        if item.name == "llama-server" or item.suffix == ".so" or ".so." in item.name:
            shutil.copy2(item, out / "bin" / item.name, follow_symlinks=True)
    return binary


def variant_dir(binary: Path, variant: str) -> Path:
    """A directory with the binary, its libraries and only the ``variant`` CPU module."""
    target = binary.parent.parent / f"only-{variant}"
    target.mkdir(exist_ok=True)
    for item in binary.parent.iterdir():
        if item.name.startswith("libggml-cpu-") and item.name != f"libggml-cpu-{variant}.so":
            continue
        destination = target / item.name
        if not destination.exists():
            shutil.copy2(item, destination)
    if not (target / f"libggml-cpu-{variant}.so").exists():
        raise SystemExit(f"llama-server has no CPU module {variant!r} in {binary.parent}")
    return target / "llama-server"


if __name__ == "__main__":
    print(build())
