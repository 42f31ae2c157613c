"""Sign-in, its callback and sign-out."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.console.deps import IdP, Pages, Settings
from services.console.signin import SignInFailed

router = APIRouter(tags=["sign-in"])


def local_path(target: str | None) -> str:
    """Only a path on this site, never another host (`//evil`, `https://…`): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/auth/login")
async def login(request: Request, provider: IdP, settings: Settings, next: str = "/") -> Response:
    request.session["next"] = local_path(next)
    redirect: Response = await provider.client.authorize_redirect(request, settings.redirect_uri)
    return redirect


@router.get("/auth/callback")
async def callback(request: Request, provider: IdP, pages: Pages) -> Response:
    """authlib checks the state, sends the PKCE verifier, verifies the id_token and its
    nonce; then the session starts under a new id."""
    try:
        token = await provider.client.authorize_access_token(request)
        target = local_path(request.session.get("next"))
        await provider.signed_in(request.session, token)
    except (OAuthError, SignInFailed, KeyError) as error:
        request.session.clear()
        return pages.page(request, "signin_failed.html", 401, reason=str(error))
    return RedirectResponse(target, status_code=303)


@router.post("/auth/logout")
async def logout(request: Request, provider: IdP) -> Response:
    """Ends the session here, then at the provider."""
    id_token = request.session.get("id_token")
    request.session.clear()
    return RedirectResponse(await provider.end_session_url(id_token), status_code=303)
