# neurorl in a container: exactly the packages pyproject.toml pins.
# TORCH picks the torch build: cpu (default), or a CUDA one such as cu128 for GPUs:
#   docker build -t neurorl .                       docker build --build-arg TORCH=cu128 -t neurorl:cuda .
FROM python:3.11-slim
ARG TORCH=cpu
RUN apt-get update && apt-get install -y --no-install-recommends gifsicle git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/neurorl
COPY pyproject.toml README.md ./
COPY src ./src
COPY tasks ./tasks
COPY models ./models
COPY migrations ./migrations
# torch first, at pyproject's pin and from the chosen build's index, so no other package can
# pull a different build; then the project with its pins; then a check that nothing drifted.
RUN TORCH_PIN="$(python -c "import tomllib; print(next(d for d in tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'] if d.startswith('torch==')))")" \
 && pip install --no-cache-dir "$TORCH_PIN" --index-url "https://download.pytorch.org/whl/${TORCH}" \
 && pip install --no-cache-dir . \
 && python -m neurorl_cli.launch.containers check-pins pyproject.toml
ENV NEURORL_HOME=/data/neurorl
ENTRYPOINT ["neurorl"]
