# fossil ingest worker image (CUDA).  Built by docker-compose.yml's `ingest` service.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/models/hf
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/fossil
ENV PATH=/opt/fossil/bin:$PATH

WORKDIR /src
# torch first, from the CUDA index, so the generic requirement below installs nothing more.
RUN pip install torch --index-url https://download.pytorch.org/whl/cu128
COPY pyproject.toml README.md ./
COPY fossil ./fossil
RUN pip install '.[postgres]'

# Model weights live in a volume (HF_HOME): mount a pre-populated cache on air-gapped hosts
# and set HF_HUB_OFFLINE=1.
VOLUME ["/models"]
ENTRYPOINT ["fossil", "ingest"]
