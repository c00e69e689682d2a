# The gateway as a container. It expects DATABASE_URL (see docker-compose.yml);
# without it, it would start an embedded PostgreSQL under GATEWAY_DATA_DIR.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schema schema
COPY channels channels
COPY inbox inbox
COPY gateway gateway
COPY sql sql
RUN pip install . && rm -rf /src

RUN useradd --create-home --uid 10001 gateway && mkdir -p /data && chown gateway /data
USER gateway
WORKDIR /data

ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATA_DIR=/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"

# exec form: SIGTERM from `docker stop` reaches the gateway, which shuts down cleanly.
ENTRYPOINT ["inbox-gateway"]
CMD ["serve"]
