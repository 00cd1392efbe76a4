# One image for web (gunicorn), worker and beat; configured only by environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 clinic

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time (whitenoise serves them, compressed and hashed).
# (The encryption key is a dummy too: collectstatic reads no data.)
RUN DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    CLINIC_FIELD_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE= \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput

USER clinic
EXPOSE 8000
# The access log has the path without its query string: search terms stay out of logs.
CMD ["gunicorn", "clinic.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", \
     "--access-logformat", "%(h)s %(t)s \"%(m)s %(U)s\" %(s)s %(b)s %(L)s"]
