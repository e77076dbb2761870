# syntax=docker/dockerfile:1
# The taskq images of the standard deployment (docker-compose.yml builds both targets):
#   runtime (the default, last stage)  taskq with the HTTP API: `taskq serve` and `taskq worker`
#   web                                Nginx with the dashboard's files and deploy/nginx.conf
# The dashboard is built once, with Node, in the first stage; neither image needs Node to run.
#   docker build -t taskq .            docker build --target web -t taskq-web .

ARG NODE_VERSION=22
ARG PYTHON_VERSION=3.11
ARG NGINX_VERSION=1.27

# ---- the dashboard: npm ci && npm run build (scripts/build_dashboard.sh does the same)
FROM node:${NODE_VERSION}-bookworm-slim AS dashboard
WORKDIR /src/api/dashboard
COPY api/dashboard/package.json api/dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY api/dashboard/ ./
# vite writes the build to ../taskq_api/dashboard_dist, inside the Python package
RUN npm run build

# ---- Nginx in front: the dashboard's files and the proxy to the API
FROM nginx:${NGINX_VERSION}-alpine AS web
COPY deploy/nginx.conf /etc/nginx/nginx.conf
# Nginx serves the hashed assets; the page comes from the API, with its Content-Security-Policy.
COPY --from=dashboard /src/api/taskq_api/dashboard_dist/assets/ /usr/share/nginx/html/assets/
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1/healthz"]

# ---- taskq: a slim Python with taskq[api] installed, run as a non-root user
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/dev.txt requirements/dev.txt
COPY taskq/ taskq/
COPY api/taskq_api/ api/taskq_api/
COPY --from=dashboard /src/api/taskq_api/dashboard_dist/ api/taskq_api/dashboard_dist/
# The versions CI tested: the dev lock's pins (hashes dropped) constrain the install.
RUN sed -e '/^ *--hash/d' -e 's/ *\\$//' requirements/dev.txt > /tmp/constraints.txt \
    && pip install --no-cache-dir -c /tmp/constraints.txt ".[api]" \
    && rm -rf /src /tmp/constraints.txt
RUN groupadd --system --gid 10001 taskq \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --create-home --shell /usr/sbin/nologin taskq
WORKDIR /app
# The example task module and the health checks (owned by root: the taskq user cannot change
# them); your own module goes in /app/tasks (deploy/compose.tasks.yml mounts it), which comes
# first on the import path.
COPY deploy/example_tasks.py deploy/healthcheck.py ./
ENV PYTHONPATH=/app/tasks:/app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "/app/healthcheck.py", "api", "http://127.0.0.1:8000/readyz"]
CMD ["taskq", "serve", "example_tasks:tq", "--host", "0.0.0.0", "--port", "8000"]
