# The dspyops service image: the `dspyops` package with its server extra.
#
# Two stages: the wheel is built from the build context in the first, and only the wheel
# reaches the image, so nothing else in the context (a stray .env with keys, say) can
# end up in one of its layers.
FROM python:3.11-slim AS build
WORKDIR /src
# The repository root is the package (pyproject's package-dir); .dockerignore keeps
# tests, benches, examples, the local venv, stack data and .env files out of the context.
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN whl=$(ls /wheels/dspyops-*.whl) && pip install --no-cache-dir "${whl}[server]" \
    && rm -rf /wheels
WORKDIR /app
ENV DSPYOPS_HOME=/var/cache/dspyops
CMD ["dspyops", "--help"]
