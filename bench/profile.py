"""Profile one request path in-process: `python -m bench.profile /api/v1/ [repeat]`.

Sets up a benchmark database like `python -m bench`, makes an admin with a token, then runs the
request `repeat` times through Django's WSGI handler (what a gunicorn worker calls) under
cProfile and prints the 40 most expensive functions by cumulative and by own time.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/api/v1/"
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("API_THROTTLE_USER", "1000000/minute")
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection

    from opsportal.accounts import services
    from opsportal.accounts.roles import Role

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        call_command("migrate", verbosity=0)
        admin = services.create_user(username="bench-profile", role=Role.ADMIN, actor=None, password="x" * 16)
        _token, raw = services.create_api_token(user=admin, name="profile", actor=None)
        handler = WSGIHandler()
        route, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": route, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "HTTP_HOST": "127.0.0.1:8000", "HTTP_AUTHORIZATION": f"Bearer {raw}", "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
        }  # fmt: skip

        def call() -> None:
            statuses = []
            body = handler(dict(environ, **{"wsgi.input": io.BytesIO()}), lambda status, _: statuses.append(status))
            b"".join(body)
            if hasattr(body, "close"):
                body.close()
            assert statuses[0].startswith("200"), statuses

        healthz = dict(environ, PATH_INFO="/healthz", HTTP_AUTHORIZATION="")
        for _ in range(50):
            call()
            b"".join(handler(dict(healthz), lambda status, headers: None))
        start = time.perf_counter()
        for _ in range(repeat):
            b"".join(handler(dict(healthz), lambda status, headers: None))
        print(f"/healthz: {(time.perf_counter() - start) * 1000 / repeat:.3f} ms per request in-process")
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        print(f"{path}: {(time.perf_counter() - start) * 1000 / repeat:.3f} ms per request in-process")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            call()
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(os.environ.get("PROFILE_FILTER", ""), 60)
        stats.sort_stats("tottime").print_stats(30)
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
