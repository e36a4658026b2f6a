# The robot process with local models (and `voiceplat migrate`, `voiceplat web`: docker-compose.yml
# runs them all from this one image). Build: docker build -t voiceplat .  (.dockerignore keeps this
# machine's .venv, secrets and call records out; the image makes its own .venv and models).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      festival festvox-ru espeak-ng sox build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN bash scripts/setup.sh run
# WebSocket ingresses + /health /metrics, SIP (pipeline_russian's sip.port), AudioSocket, web
EXPOSE 5200 5260/udp 5260/tcp 5270 8000
CMD [".venv/bin/python", "run.py", "robots/pipeline_russian"]
