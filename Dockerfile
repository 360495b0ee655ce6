# syntax=docker/dockerfile:1
# One image for every studio-ai process; the command picks the role:
#   docker run IMAGE gateway
#   docker run IMAGE worker run --group downloader          (one per consumer group)
#   docker run IMAGE worker inference --pool builtin        (one per inference pool)
#   docker run IMAGE images sweep --every 300
#   docker run IMAGE topics create                           (one-shot)
# Ports: the gateway serves the API, /healthz and /metrics on 8000 (STUDIO_GATEWAY_PORT);
# consumers and inference workers serve /healthz and /metrics on 9100 (STUDIO_METRICS_PORT).
#
# torch: by default the CPU wheel of the pinned torch is installed first, from
# TORCH_INDEX_URL (the PyTorch CPU index): a few hundred MB instead of the several GB of CUDA
# libraries that PyPI's Linux wheel pulls in. That suits every process of this image in the
# usual deployment, where GPU inference runs on vLLM / TGI servers and the inference workers
# only call them. For in-process transformers inference on a GPU node, build with
#   --build-arg TORCH_INDEX_URL=            (empty: `pip install .` takes PyPI's CUDA wheel)
# or point TORCH_INDEX_URL at a CUDA index (e.g. .../whl/cu128).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Keep equal to the torch pin in pyproject.toml (tests/contract/test_container_image.py checks it).
ARG TORCH_VERSION=2.15.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY studio_ai ./studio_ai
RUN pip install . && studio-ai --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="studio-ai" \
      org.opencontainers.image.description="The AI model layer of Databiomics Studio"
# Bind all interfaces in a container; caches under /tmp so the root filesystem can be
# read-only (Kubernetes mounts an emptyDir there); models on a volume at /models.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/studio \
    HF_HOME=/tmp/huggingface \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HUB_DISABLE_TELEMETRY=1 \
    STUDIO_GATEWAY_HOST=0.0.0.0 \
    STUDIO_GATEWAY_PORT=8000 \
    STUDIO_METRICS_HOST=0.0.0.0 \
    STUDIO_METRICS_PORT=9100 \
    STUDIO_MODELS_DIR=/models \
    STUDIO_LOG_JSON=true
RUN groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/studio --create-home \
       --shell /usr/sbin/nologin studio \
    && mkdir -p /models \
    && chown 10001:10001 /models
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/studio-ai-healthcheck
WORKDIR /home/studio
# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 10001:10001
EXPOSE 8000 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["studio-ai-healthcheck"]
ENTRYPOINT ["studio-ai"]
CMD ["--help"]
