"""WSGI entry point for gunicorn: `gunicorn -c python:api.gunicorn_conf console.wsgi:app` (API + console)."""
from console.app import create_app
from core.platform import logs
from core.platform.config import Settings

_settings = Settings.from_env()
logs.configure(_settings.log_level, _settings.log_format)
app = create_app(_settings)
