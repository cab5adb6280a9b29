# The API image. Migrations are not run at start-up on Postgres: compose runs
# `python -m service seed` once (migrate + seed) before the API starts.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app
# the pinned runtime dependencies (`make lock`) in a layer of their own, then the service itself
# without resolving anything again
COPY requirements/lock.txt ./requirements/lock.txt
RUN pip install --no-cache-dir -r requirements/lock.txt
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && useradd --create-home --uid 10001 app \
    && mkdir -p /app/data && chown app /app/data
USER app

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["python", "-m", "service", "serve"]
