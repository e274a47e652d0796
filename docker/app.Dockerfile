# The lab's Python image: the app under gunicorn, the fake upstream API, and
# Locust master/workers all run from it (docker-compose.yml).
# Build context: the repository root (docker/app.Dockerfile.dockerignore).
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /lab

# Dependencies first (pinned in pyproject.toml), so that a code change does
# not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The project itself; editable, so that packages outside setuptools' list
# (upstream/) import from /lab as well.
COPY . .
RUN pip install --no-deps -e . \
 && useradd --create-home --uid 10001 lab \
 && mkdir -p /tmp/lab-state \
 && chown -R lab /tmp/lab-state
USER lab

ENTRYPOINT ["sh", "/lab/docker/app-entrypoint.sh"]
CMD ["gunicorn", "-c", "target_app/gunicorn_conf.py", "target_app.main:create_app()", "--bind", "0.0.0.0:8000", "--workers", "4"]
