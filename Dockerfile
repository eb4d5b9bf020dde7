# syntax=docker/dockerfile:1
#
# Image for the helpdesk Django project.  One image serves every application
# role in docker-compose.yml (migrate, web, worker, beat); only the command
# differs.  The default command runs the ASGI app under gunicorn with uvicorn
# workers (docker/gunicorn.conf.py).

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=helpdesk.settings

# Unprivileged runtime user (fixed numeric ids, so runAsNonRoot-style checks
# and volume ownership are predictable).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home \
            --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# 1) Dependencies only: the exact versions of requirements.lock (production dependencies; daphne
#    and the test tools are in requirements-dev.lock), then the project itself without
#    resolving again. pyproject.toml declares no packages of its own
#    ([tool.setuptools] packages = []), so that needs just the metadata files. This layer is
#    rebuilt only when they change, not on every source edit.
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock \
 && pip install --no-cache-dir --no-deps . \
 && rm -rf build ./*.egg-info

# 2) Application source (filtered by .dockerignore).  Owned by root and only
#    readable by the app user: the running process cannot modify its code.
COPY . .

# 3) Static files, collected at build time (served by whitenoise).  The
#    settings need some variables just to import; these throw-away values
#    exist only for this RUN step and are not stored in the image config.
#    The real ones come from the environment at run time (docker-compose.yml).
RUN DJANGO_SECRET_KEY=build-only-not-a-secret \
    DJANGO_DEBUG=false \
    DATABASE_URL=sqlite:///:memory: \
    REDIS_URL=redis://localhost:6379/0 \
    HELPDESK_FERNET_KEYS=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    MEDIA_ROOT=/data/media \
    python manage.py collectstatic --noinput

# Uploaded media.  Created here, owned by the app user, so that an empty named
# volume mounted on /data/media is initialised with that ownership.
RUN mkdir -p /data/media && chown -R app:app /data

USER 10001:10001

EXPOSE 8000

# Several uvicorn worker processes (WEB_CONCURRENCY, default 2 x CPUs + 1,
# capped); X-Forwarded-* honoured only from FORWARDED_ALLOW_IPS (127.0.0.1).
CMD ["gunicorn", "-c", "docker/gunicorn.conf.py", "helpdesk.asgi:application"]
