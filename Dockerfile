# neurorl in a container. TORCH_INDEX picks the torch build: the CPU wheels by default,
# a CUDA index (e.g. https://download.pytorch.org/whl/cu128) for GPUs.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends gifsicle && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/neurorl
COPY pyproject.toml README.md ./
COPY src ./src
COPY tasks ./tasks
COPY models ./models
COPY migrations ./migrations
# torch first, pinned, so no other package can pull a different build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX} \
 && pip install --no-cache-dir .
ENV NEURORL_HOME=/data/neurorl
ENTRYPOINT ["neurorl"]
