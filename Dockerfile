# treadle as a container image: `docker run IMAGE deploy --cluster web-prod ...`.
#
# BASE is any image whose `python3` is Python 3.11 or later with venv and pip. Both stages
# use it, so the interpreter that the venv points to is there in the final image too.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, in a layer that only pyproject.toml and the version invalidate.
# hatchling insists on the readme that pyproject.toml names: an empty one stands in.
COPY pyproject.toml ./
COPY src/treadle/__init__.py src/treadle/
RUN python3 -m venv /opt/treadle \
 && touch README.md \
 && /opt/treadle/bin/pip install --quiet '.[dcos,otel]'
# Then treadle itself (.dockerignore lets in only pyproject.toml, README.md and src/).
# pip and setuptools only install things: the final image has no use for them.
COPY . ./
RUN /opt/treadle/bin/pip install --quiet --no-deps --force-reinstall . \
 && /opt/treadle/bin/pip uninstall --quiet --yes pip setuptools

FROM ${BASE}
LABEL org.opencontainers.image.title="treadle" \
      org.opencontainers.image.description="Spinnaker-style deployment stages as plain CI steps" \
      org.opencontainers.image.licenses="Apache-2.0"
# Any uid may run it (Jenkins' docker agent runs `docker run -u UID:GID`): every file is
# world-readable, the bytecode was compiled at install time, and nothing is written at run
# time, $HOME included.
ENV PATH=/opt/treadle/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["treadle"]
CMD ["--help"]
# Only the installed venv, last, so that a change to treadle rebuilds one layer: no
# sources, wheels, compilers or pip caches.
COPY --from=build /opt/treadle /opt/treadle
