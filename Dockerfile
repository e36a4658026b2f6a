# The robot process with local models. Build: docker build -t voiceplat .
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      festival festvox-ru espeak-ng sox build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN bash scripts/setup.sh run
EXPOSE 5200
CMD [".venv/bin/python", "run.py", "robots/pipeline_russian"]
