"""A connection to a Ray cluster's Jobs API (the dashboard URL), with token auth and clear errors.

Ray 2.60 heads started with ``ray start --head`` (or by ``ray.init()``) require a bearer token
on the Jobs API when token authentication is on. Ray's own client only sends one when *this*
process has ``RAY_AUTH_MODE=token``, so we look the token up the way Ray does (the
``RAY_AUTH_TOKEN`` variable, then the file named by ``RAY_AUTH_TOKEN_PATH``, then
``~/.ray/auth_token``) and send it ourselves. ``ray get-auth-token`` on the head prints it.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

ADDRESS_HELP = "pass the Ray dashboard URL with --address http://HEAD:8265 (or set RAY_ADDRESS to it)"
TOKEN_HELP = ("set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file holding it, or write it to "
              "~/.ray/auth_token (`ray get-auth-token` on the head prints it)")


NO_TOKEN = "no token"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")  # job statuses that never change again


class JobsApiError(ValueError):
    """A user-facing problem with the cluster (address, token, job id); the CLI prints it in one line."""


def resolve_address(address: str | None) -> str:
    """The Jobs API URL: ``--address`` or ``$RAY_ADDRESS``, which must be an http(s) URL."""
    env = os.environ.get("RAY_ADDRESS", "")
    address = address or env
    if not address.startswith(("http://", "https://")):
        where = f"--address {address!r}" if address and address != env else f"RAY_ADDRESS={env!r}"
        raise JobsApiError(f"{ADDRESS_HELP}; {where} is not an http(s) URL" if address else ADDRESS_HELP)
    return address.rstrip("/")


def auth_token() -> tuple[str | None, str]:
    """The token Ray would use, and where it came from (for error messages)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise JobsApiError(f"RAY_AUTH_TOKEN_PATH={path!r} cannot be read: {exc.strerror}") from None
        if not token:
            raise JobsApiError(f"RAY_AUTH_TOKEN_PATH={path!r} is empty")
        return token, path
    default = os.path.expanduser("~/.ray/auth_token")
    if os.path.exists(default):
        with open(default, encoding="utf-8") as f:
            return f.read().strip() or None, default
    return None, NO_TOKEN


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    # Ray's client sends requests without a timeout: an address that drops packets would hang
    # for minutes. A TCP connect with a timeout fails fast with a clear message instead.
    url = urlparse(address)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise JobsApiError(f"cannot reach the Ray Jobs API at {address} ({exc.strerror or exc}); "
                           "is the head running, and is this its dashboard URL (port 8265 by default)?") from None


@contextlib.contextmanager
def api_errors(address: str, source: str = "", job_id: str | None = None) -> Iterator[None]:
    """Turn the Jobs API's exceptions into one-line JobsApiErrors."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as exc:
        # With no token of ours, Ray's client may still send one it cached in this process (an
        # embedded ray.init earlier): the cluster's refusal then still means "no token found".
        if "Authentication required" in str(exc) or source == NO_TOKEN:
            raise JobsApiError(f"the Ray cluster at {address} requires an auth token and none was found: "
                               f"{TOKEN_HELP}") from None
        raise JobsApiError(f"the Ray cluster at {address} rejected the auth token from {source}: "
                           f"{TOKEN_HELP}") from None
    except ConnectionError as exc:
        raise JobsApiError(f"lost the connection to the Ray Jobs API at {address}: {exc}") from None
    except RuntimeError as exc:
        if job_id is not None and ("404" in str(exc) or "does not exist" in str(exc)):
            raise JobsApiError(f"no job {job_id!r} on {address} (`tessera jobs list` shows the jobs)") from None
        raise


class JobsApi:
    """``JobSubmissionClient`` for one address, with the token attached; errors as JobsApiError."""

    def __init__(self, address: str | None):
        self.address = resolve_address(address)
        _check_reachable(self.address)
        token, self.token_source = auth_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        from ray.job_submission import JobSubmissionClient

        with api_errors(self.address, self.token_source):
            self.client = JobSubmissionClient(self.address, headers=headers)

    def call(self, method: str, *args, job_id: str | None = None, **kwargs):
        with api_errors(self.address, self.token_source, job_id):
            return getattr(self.client, method)(*args, **kwargs)

    def info(self, job_id: str):
        return self.call("get_job_info", job_id, job_id=job_id)
