# consultbot: `docker build -t consultbot .` then see docs/deploy.md.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY leads ./leads
COPY scheduling ./scheduling
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 consultbot
USER consultbot
# Inside a container the server must listen on every interface; the proxy is the only way in.
ENV HTTP_HOST=0.0.0.0 HTTP_PORT=8080 LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# SIGTERM (docker stop) is handled: no more updates, those in hand finish, exit 0.
STOPSIGNAL SIGTERM
CMD ["consultbot", "run"]
