"""A Python environment that holds only what the lent GPU machines' image holds, for dry runs.

    python scripts/device_like_env.py /tmp/device_like
    DRY=1 PYTHON=/tmp/device_like/venv/bin/python PYTHONPATH=/tmp/device_like/site \
      WHEELS=/tmp/device_like/whl ... bash scripts/gpu_session.sh      (docs/training.md, "A GPU session")

Why: a device call is the scarcest thing this project gets, and a dry run in the full development
environment cannot show that a package is missing there. This one can: it is a fresh venv whose
only packages are links to those of this checkout's .venv that the GPU image also has (the list
below, as the machines' maintainers published it in 2026-11), so an import of anything else fails
as it would there. The wheels voxkit carries (scripts/device_kit.sh) are fetched for this Python
into WHEELS. Versions and the CPU build of torch are this machine's; only the package set is the
image's.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

IMAGE_LIST = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
    lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py
    mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja
    numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
    nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
    nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
    nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless
    optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
    pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
    py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark
    pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml
    regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy
    seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
    threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq
    torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
    xxhash yarl zipp
"""
IMAGE_PACKAGES = IMAGE_LIST.split()


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def link_image_packages(site: Path, out: Path) -> list[str]:
    """Link the top-level modules (and metadata) of each distribution in ``site`` that the image has."""
    wanted = {norm(n) for n in IMAGE_PACKAGES}
    out.mkdir(parents=True, exist_ok=True)
    linked = []
    for dist in metadata.distributions(path=[str(site)]):
        name = norm(dist.metadata["Name"])
        if name not in wanted and not name.startswith("nvidia-"):
            continue
        tops = {str(f).split("/")[0] for f in dist.files or []}
        for top in sorted(tops):
            if top.startswith("..") or top == "__pycache__" or top.endswith(".pth"):
                continue
            src, dst = site / top, out / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
        linked.append(name)
    return sorted(set(linked))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--site", type=Path, default=None, help="site-packages to link from (default: this interpreter's)")
    a = p.parse_args()
    site = a.site or Path(next(x for x in sys.path if x.endswith("site-packages")))
    venv.create(a.out / "venv", with_pip=True)
    linked = link_image_packages(site, a.out / "site")
    print(f"{a.out / 'site'}: {len(linked)} packages of the image linked from {site}")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = {**os.environ, "PYVER": version, "WHEELS": str(a.out / "whl")}
    subprocess.run(["bash", "scripts/device_kit.sh", "wheels"], check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"{a.out / 'whl'}: the carried wheels for Python {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
