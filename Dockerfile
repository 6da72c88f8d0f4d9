# rlbind-bench in a container, CPU or CUDA.
#
#   docker build -t rlbind-bench .
#   docker run --rm --gpus all -v "$PWD/data:/data" -v rlbind-cache:/cache -v "$PWD/runs:/work/runs" \
#     rlbind-bench run --model /data/ckpt --suite quick --device cuda --dataset-dir image=/data/photos --out runs/x
#
# Base: plain Debian Python 3.11. The pinned torch wheels in requirements/lock.txt (torch 2.14.1, CUDA 13
# build) bring their own CUDA runtime, cuDNN, NCCL... as nvidia-* wheels, so no CUDA base image is needed:
# the host only needs an NVIDIA driver recent enough for CUDA 13 and the NVIDIA container toolkit.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RLBIND_DATA_ROOT=/data \
    RLBIND_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface \
    MPLBACKEND=Agg

# opencv-python needs libGL and glib at import time; nothing else is taken from Debian. Not version-pinned:
# bookworm's security updates replace old versions in the archive, so exact pins would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/rlbind-bench

# The lock alone first: its (large) layer is reused until the lock changes. Exactly the lock's pins,
# nothing resolved at build time.
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --no-cache-dir -r requirements/lock.txt

# The package itself, editable so that attacks/ and datasets.yaml next to it are found as in a checkout.
# --no-deps: every dependency came from the lock; --no-build-isolation: build with the lock's setuptools.
COPY pyproject.toml README.md datasets.yaml ./
COPY attacks attacks
COPY rlbind_bench rlbind_bench
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && rlbind-bench list threats > /dev/null

# Unprivileged user; data and caches live in volumes, results in the working directory.
RUN groupadd --gid 10001 rlbind \
 && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin rlbind \
 && mkdir -p /data /cache /work \
 && chown rlbind:rlbind /data /cache /work
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /work
VOLUME ["/data", "/cache"]

ENTRYPOINT ["rlbind-bench"]
CMD ["--help"]
