# The dspyops service image: the `dspyops` package with its server extra.
FROM python:3.11-slim
WORKDIR /src
# The repository root is the package (pyproject's package-dir); .dockerignore keeps
# tests, benches, the local venv and stack data out of the build context.
COPY . .
RUN pip install --no-cache-dir ".[server]" && rm -rf /src
WORKDIR /app
ENV DSPYOPS_HOME=/var/cache/dspyops
CMD ["dspyops", "--help"]
