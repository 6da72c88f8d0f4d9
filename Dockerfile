# syntax=docker/dockerfile:1
# rlbind-bench in a container, CPU or CUDA: the package installed from its wheel (not editable; the wheel carries
# the attacks, recipes, datasets.yaml and the demo zoo as package data), and the demo's Debian sources.
#
#   docker build -t rlbind-bench .
#   docker run --rm -v rlbind-data:/data rlbind-bench data prepare demo       # the offline demo data
#   docker run --rm -v rlbind-data:/data -v rlbind-cache:/cache -v "$PWD/runs:/work/runs" rlbind-bench run --out runs/demo
#   docker run --rm --gpus all -v "$PWD/data:/data" -v rlbind-cache:/cache -v "$PWD/runs:/work/runs" \
#     rlbind-bench run --model /data/ckpt --suite quick --device cuda --dataset-dir image=/data/photos --out runs/x
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/runs:/work/runs" rlbind-bench \
#     train --recipe rlbind --init /data/ckpt --dataset-dir image=/data/photos --out runs/rlbind
#
# Base: plain Debian Python 3.11. The pinned torch wheels in requirements/lock.txt (torch 2.14.1, CUDA 13
# build) bring their own CUDA runtime, cuDNN, NCCL... as nvidia-* wheels, so no CUDA base image is needed:
# the host only needs an NVIDIA driver recent enough for CUDA 13 and the NVIDIA container toolkit.

# Stage 1: the wheel, built by the lock's setuptools; nothing of this stage but the wheel reaches the image.
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY requirements/lock.txt requirements/lock.txt
RUN grep -E '^setuptools==' requirements/lock.txt > /tmp/build-requirements.txt \
 && pip install --no-cache-dir -r /tmp/build-requirements.txt
COPY pyproject.toml README.md LICENSE datasets.yaml ./
COPY rlbind_bench rlbind_bench
COPY attacks attacks
COPY recipes recipes
COPY zoo/demo zoo/demo
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheel .

# Stage 2: the image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RLBIND_DATA_ROOT=/data \
    RLBIND_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface \
    MPLBACKEND=Agg

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Unprivileged user, first: the demo sources go to its cache folder (the demo builder's default).
RUN groupadd --gid 10001 rlbind \
 && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin rlbind \
 && mkdir -p /data /cache /work \
 && chown rlbind:rlbind /data /cache /work

# The demo's sources (scripts/install-demo-sources.sh, kept in step with rlbind_bench/data/demo/sources.py): the
# TTS engines and Festival voices installed, the speech and digit packages downloaded and only the needed files
# unpacked; the .debs are dropped once unpacked. Not version-pinned: bookworm's security updates replace old
# versions in the archive, so exact pins would break rebuilds. (OpenCV is the headless build: no libGL.)
RUN --mount=type=bind,source=scripts/install-demo-sources.sh,target=/tmp/install-demo-sources.sh \
    apt-get update \
 && bash /tmp/install-demo-sources.sh /home/rlbind/.cache/rlbind-bench/sources \
 && rm -rf /home/rlbind/.cache/rlbind-bench/sources/debs /var/lib/apt/lists/* \
 && chown -R rlbind:rlbind /home/rlbind/.cache

# The lock alone first: its (large) layer is reused until the lock changes. Exactly the lock's pins, nothing
# resolved at build time (--no-deps: the lock is a complete freeze, and imagecorruptions' metadata, a test
# reference, would pull the GUI opencv-python beside the headless build).
COPY requirements/lock.txt /opt/rlbind-bench/requirements/lock.txt
# torchattacks 3.5.1's wheel also ships a robustbench/ folder (a commented-out copy) that overwrites robustbench's
# own files when installed after it: robustbench is reinstalled last (its pin must equal the lock's: tested).
RUN pip install --no-cache-dir --no-deps -r /opt/rlbind-bench/requirements/lock.txt \
 && pip install --no-cache-dir --no-deps --force-reinstall robustbench==1.1.1

# The package from its wheel, not editable: --no-deps, every dependency came from the lock. The threats, training
# recipes, dataset catalogue and demo zoo it reads at run time are its package data (rlbind_bench/bundled.py).
RUN --mount=type=bind,from=wheel,source=/wheel,target=/wheel \
    pip install --no-cache-dir --no-deps /wheel/rlbind_bench-*.whl
# Smoke test of the install: the threats load, and the demo zoo's default model loads from its weights.
RUN rlbind-bench list threats > /dev/null \
 && python -c "from rlbind_bench.encoders.registry import load_encoder; load_encoder('demo/rlbind')"

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# Data and caches live in volumes, results in the working directory.
WORKDIR /work
VOLUME ["/data", "/cache"]

ENTRYPOINT ["rlbind-bench"]
CMD ["--help"]
