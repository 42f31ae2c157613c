"""The provider's few HTML pages: sign-in, error, signed out. No script at all, so the
Content-Security-Policy forbids every script; the stylesheet is served from `/style.css`."""

from __future__ import annotations

from jinja2 import Environment, select_autoescape
from starlette.responses import HTMLResponse, Response

from sandbox.identity.people import PEOPLE

# form-action covers the redirect that follows a form post (Chromium blocks it otherwise): the
# sign-in form's answer is a redirect to the client's callback, registered on any loopback port.
CSP = (
    "default-src 'none'; style-src 'self'; "
    "form-action 'self' http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'"
)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; }
label { display: block; margin-top: .8rem; }
input { font-size: 1rem; padding: .3rem; width: 16rem; }
button { margin-top: 1rem; font-size: 1rem; padding: .4rem 1.2rem; }
.error { color: #a00; border: 1px solid #a00; padding: .5rem; }
table { border-collapse: collapse; margin-top: 1.5rem; }
td, th { border-bottom: 1px solid #ccc; padding: .3rem .8rem; text-align: left; }
.note { color: #555; font-size: .9rem; }
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Sandbox identity provider</title>
<link rel="stylesheet" href="/style.css"></head>
<body><main>{% block main %}{% endblock %}</main></body></html>"""

_SIGN_IN = _env.from_string(
    _LAYOUT.replace(
        "{% block main %}{% endblock %}",
        """<h1>Sign in to {{ client_id }}</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/authorize">
<input type="hidden" name="handle" value="{{ handle }}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{{ username }}" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<table><caption>Demo staff (development only; every password is <code>demo</code>)</caption>
<thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">Roles</th>
</tr></thead><tbody>
{% for p in people %}<tr><td><code>{{ p.username }}</code></td><td>{{ p.name }}</td>
<td>{{ p.roles | join(", ") }}</td></tr>{% endfor %}
</tbody></table>""",
    )
)

_MESSAGE = _env.from_string(
    _LAYOUT.replace(
        "{% block main %}{% endblock %}",
        """<h1>{{ title }}</h1><p{% if error %} class="error" role="alert"{% endif %}>{{ text }}</p>
<p class="note">Sandbox identity provider (development only).</p>""",
    )
)


def _page(html: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status)
    secure(response)
    return response


def secure(response: Response) -> None:
    """Headers of every page: no script, no framing, never cached."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"


def sign_in_page(handle: str, client_id: str, *, error: str = "", username: str = "") -> Response:
    html = _SIGN_IN.render(
        title="Sign in",
        handle=handle,
        client_id=client_id,
        error=error,
        username=username,
        people=list(PEOPLE.values()),
    )
    return _page(html, 200 if not error else 401)


def error_page(text: str, status: int = 400) -> Response:
    """For a request that cannot be sent back to its client (unknown client, redirect URI)."""
    return _page(_MESSAGE.render(title="Sign-in request refused", text=text, error=True), status)


def signed_out_page() -> Response:
    return _page(_MESSAGE.render(title="Signed out", text="You are signed out.", error=False))
