# The project image: the Prefect server, the setup job and the workers of docker-compose.yml all
# run it. Exact versions from requirements.lock (prefect 3.8.8 with fastapi<0.151, SQLAlchemy 2.0).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 \
    PREFECT_HOME=/home/mfs/.prefect PREFECT_LOGGING_EXTRA_LOGGERS=mfs \
    MFS_PROJECT_ROOT=/app MFS_STATE_DIR=/home/mfs/.mfs MFS_LOG_FORMAT=json

RUN useradd --create-home --uid 10001 mfs
WORKDIR /app

# Dependencies first (cached layer), then the code.
COPY pyproject.toml requirements.lock README.md ./
COPY src/ src/
RUN pip install --no-cache-dir -c requirements.lock . \
    && python -c "import mfs, prefect, talib, yfinance"

COPY config/ config/
COPY sql/ sql/
COPY flows/ flows/
COPY deployments/ deployments/
COPY prefect.yaml ./

USER mfs
RUN mkdir -p /home/mfs/.prefect /home/mfs/.mfs
CMD ["prefect", "worker", "start", "--pool", "mfs-process", "--type", "process"]
