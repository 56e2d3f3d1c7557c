# One image for the parsing service's api, workers and reconciler (the command picks the role):
#   docker run IMAGE                                   -> schedgen serve api --host 0.0.0.0 --port 8000
#   docker run -e SCHEDGEN_HEALTHCHECK_URL=http://127.0.0.1:9101/metrics IMAGE serve worker
# Settings come from SCHEDGEN_* environment variables (docs/API.md, Settings).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schedgen_ops ./schedgen_ops
COPY templates ./templates
COPY profiles ./profiles
COPY loadtests ./loadtests
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCHEDGEN_STORAGE_URL=file:///data/uploads \
    SCHEDGEN_METRICS_DIR=/tmp/schedgen-metrics
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && groupadd --system --gid 10001 schedgen \
    && useradd --system --uid 10001 --gid schedgen --home-dir /home/schedgen --create-home schedgen \
    && mkdir -p /data/uploads && chown -R schedgen:schedgen /data
USER 10001:10001
WORKDIR /home/schedgen
VOLUME ["/data/uploads"]
EXPOSE 8000 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "schedgen_ops.service.healthcheck"]
ENTRYPOINT ["schedgen"]
CMD ["serve", "api", "--host", "0.0.0.0", "--port", "8000"]
