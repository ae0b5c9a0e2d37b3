FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events events
COPY signatures signatures
COPY aggregates aggregates
COPY runtime runtime
COPY consumers consumers
COPY projections projections
COPY api api
COPY cli cli
COPY settings.py ./
RUN pip install --no-cache-dir .
ENV DSPYOPS_HOME=/var/cache/dspyops
CMD ["dspyops", "--help"]
