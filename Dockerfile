# syntax=docker/dockerfile:1
# Roundhouse's images, one target each (docs/deploy.md):
#   cpu    in-process GGUF on CPUs: llama.cpp built portable (every CPU variant as a
#          module, the right one chosen at run time), never -march=native
#   cuda   in-process GGUF on NVIDIA GPUs
#   rocm   in-process GGUF on AMD GPUs
#   proxy  no llama-cpp-python: fronts vLLM, Ollama and OpenAI-compatible servers
# Every image installs exactly uv.lock, runs as a non-root user, binds 0.0.0.0:8080
# inside the container, and reads every ROUNDHOUSE_* setting from the environment.

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.8
ARG CUDA_VERSION=12.6.3
ARG ROCM_VERSION=6.4.1
ARG VERSION=0.1.0

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- builders: the virtual environment in /opt/roundhouse -----------------------

FROM python:${PYTHON_VERSION}-slim-bookworm AS build-base
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/roundhouse
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY engines engines
COPY gateway gateway

FROM build-base AS build-proxy
RUN uv sync --frozen --no-dev --no-editable

FROM build-base AS build-cpu
# The compiler for llama.cpp; the image that runs it does not keep it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN uv sync --frozen --no-dev --no-editable --extra llamacpp

# GPU builds: uv brings its own Python onto the vendors' images, kept in /opt/python.
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu22.04 AS build-cuda
COPY --from=uv /uv /usr/local/bin/uv
ARG PYTHON_VERSION
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PROJECT_ENVIRONMENT=/opt/roundhouse
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY engines engines
COPY gateway gateway
# The CUDA switches come from the same place as `make setup BACKEND=cuda` (run
# with uv's Python: the image has none); the unquoted $(...) is meant to split
# into uv's separate options.
# hadolint ignore=SC2046
RUN uv python install "${PYTHON_VERSION}" \
    && uv sync --frozen --no-dev --no-editable --extra llamacpp \
       $("$(uv python find "${PYTHON_VERSION}")" engines/llamacpp/_build.py cuda)

FROM rocm/dev-ubuntu-22.04:${ROCM_VERSION}-complete AS build-rocm
COPY --from=uv /uv /usr/local/bin/uv
ARG PYTHON_VERSION
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PROJECT_ENVIRONMENT=/opt/roundhouse \
    CC=/opt/rocm/llvm/bin/clang \
    CXX=/opt/rocm/llvm/bin/clang++
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY engines engines
COPY gateway gateway
# hadolint ignore=SC2046
RUN uv python install "${PYTHON_VERSION}" \
    && uv sync --frozen --no-dev --no-editable --extra llamacpp \
       $("$(uv python find "${PYTHON_VERSION}")" engines/llamacpp/_build.py rocm)

# ---- what every image runs ------------------------------------------------------

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="Roundhouse" \
      org.opencontainers.image.description="A gateway for open models: OpenAI, Anthropic, Ollama and llama-server APIs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/roundhouse roundhouse \
    && mkdir -p /models /config /cache \
    && chown roundhouse:roundhouse /models /config /cache
ENV PATH=/opt/roundhouse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    ROUNDHOUSE_HOST=0.0.0.0 \
    ROUNDHOUSE_PORT=8080 \
    ROUNDHOUSE_CONFIG=/config/registry.yaml
VOLUME ["/models", "/config", "/cache"]
EXPOSE 8080
# SIGTERM stops taking requests and lets those in flight finish (ROUNDHOUSE_SHUTDOWN_GRACE).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=4)"]
USER 10001:10001
WORKDIR /home/roundhouse
ENTRYPOINT ["roundhouse", "serve"]

FROM runtime AS proxy
COPY --from=build-proxy /opt/roundhouse /opt/roundhouse

FROM runtime AS cpu
COPY --from=build-cpu /opt/roundhouse /opt/roundhouse

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu22.04 AS cuda
ARG VERSION
LABEL org.opencontainers.image.title="Roundhouse (CUDA)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/roundhouse roundhouse \
    && mkdir -p /models /config /cache \
    && chown roundhouse:roundhouse /models /config /cache
COPY --from=build-cuda /opt/python /opt/python
COPY --from=build-cuda /opt/roundhouse /opt/roundhouse
ENV PATH=/opt/roundhouse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    ROUNDHOUSE_HOST=0.0.0.0 \
    ROUNDHOUSE_PORT=8080 \
    ROUNDHOUSE_CONFIG=/config/registry.yaml
VOLUME ["/models", "/config", "/cache"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=4)"]
USER 10001:10001
WORKDIR /home/roundhouse
ENTRYPOINT ["roundhouse", "serve"]

FROM rocm/dev-ubuntu-22.04:${ROCM_VERSION} AS rocm
ARG VERSION
LABEL org.opencontainers.image.title="Roundhouse (ROCm)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/roundhouse roundhouse \
    && usermod -aG video,render roundhouse \
    && mkdir -p /models /config /cache \
    && chown roundhouse:roundhouse /models /config /cache
COPY --from=build-rocm /opt/python /opt/python
COPY --from=build-rocm /opt/roundhouse /opt/roundhouse
ENV PATH=/opt/roundhouse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    ROUNDHOUSE_HOST=0.0.0.0 \
    ROUNDHOUSE_PORT=8080 \
    ROUNDHOUSE_CONFIG=/config/registry.yaml
VOLUME ["/models", "/config", "/cache"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=4)"]
USER 10001:10001
WORKDIR /home/roundhouse
ENTRYPOINT ["roundhouse", "serve"]
