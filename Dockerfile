# One image for web, worker and beat (see compose.yaml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPSPORTAL_VAR_DIR=/var/lib/opsportal
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home /app opsportal && mkdir -p /var/lib/opsportal && chown opsportal /var/lib/opsportal \
    && OPSPORTAL_ENV=production SECRET_KEY=collectstatic-only-not-a-secret-collectstatic-only-xx ALLOWED_HOSTS=x \
       python manage.py collectstatic --noinput
USER opsportal
EXPOSE 8000
CMD ["gunicorn", "opsportal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
