"""Finding a hub id's tokenizer: in the local Hugging Face cache, or on a hub that answers.

Left to itself, huggingface_hub retries a refused or silent connection five times with backoff
before transformers gives up: about 50 s and ten "Retrying..." lines on stderr, even under
``-q``. So lenprof asks once first, with a short timeout (``HF_HUB_ETAG_TIMEOUT``, default
5 s, no retries), whether the hub knows the model, and turns each way that fails into one
line: offline and not cached, unreachable and not cached, no such model, gated. When the hub
answers, transformers downloads as it always does (with its logger kept quiet); when it
cannot be reached but the model is cached, the cached copy loads, as transformers would.
"""

from __future__ import annotations

import contextlib
import logging
import os

PROBE_TIMEOUT = 5.0  # seconds; the hub answers a model lookup in well under one


class HubError(Exception):
    """The hub id cannot be loaded; the message says why and what to do."""


def offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def endpoint() -> str:
    """The hub huggingface_hub asks (``HF_ENDPOINT``, read when it was imported)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_cache() -> str:
    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )


def cached_snapshot(repo_id: str) -> str | None:
    """The snapshot folder of ``repo_id``'s main revision in the Hugging Face cache, if any:
    what transformers loads when it cannot ask the hub."""
    repo = os.path.join(hub_cache(), "models--" + repo_id.replace("/", "--"))
    try:
        with open(os.path.join(repo, "refs", "main"), encoding="utf-8") as fh:
            snapshot = os.path.join(repo, "snapshots", fh.read().strip())
    except OSError:
        return None
    return snapshot if os.path.isdir(snapshot) else None


def probe_timeout() -> float:
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or PROBE_TIMEOUT)
    except ValueError:
        return PROBE_TIMEOUT


LOCAL_WAYS = "or pass a local model folder or a tokenizer.json"


def locate(repo_id: str) -> str | None:
    """A local snapshot folder to load ``repo_id`` from, or None when the hub answered and
    transformers should fetch it. Raises :class:`HubError` when neither can work."""
    snapshot = cached_snapshot(repo_id)
    if offline():
        if snapshot:
            return snapshot
        raise HubError(
            f"not in the Hugging Face cache ({hub_cache()}), and HF_HUB_OFFLINE=1 keeps lenprof off the "
            f"hub; run once with the network to download it, {LOCAL_WAYS}"
        )
    from huggingface_hub.utils import (  # where huggingface_hub 0.2x keeps them too
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    try:
        with quiet_hub():
            status = _ask(repo_id)
    except HFValidationError:
        raise HubError(f"not a file, a folder or a hub id (owner/name); {LOCAL_WAYS}") from None
    except GatedRepoError:
        raise HubError(
            f"a gated model: accept its terms on {endpoint()}/{repo_id} and log in (hf auth login)"
        ) from None
    except RepositoryNotFoundError:
        status = 404
    except HfHubHTTPError:
        return None  # the hub answered with something else: transformers will say what
    except Exception as exc:  # refused, timed out, no DNS, a proxy: httpx's or requests' errors
        if snapshot:
            return snapshot
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise HubError(
            f"the hub ({endpoint()}) cannot be reached ({reason}) and the model is not in the cache "
            f"({hub_cache()}); check the network, or download it once and set HF_HUB_OFFLINE=1, {LOCAL_WAYS}"
        ) from None
    if status == 404:
        raise HubError(
            f"no such model on {endpoint()} (check the id; for a private model, log in with hf auth "
            f"login), {LOCAL_WAYS}"
        )
    return None


def _ask(repo_id: str) -> int:
    """One GET of the model's API page, no retries, on huggingface_hub's own session (its proxy
    and certificate settings). Not ``model_info``: its headers first fetch a registry from the
    hub with a timeout of their own, which would double the wait on a silent hub."""
    from huggingface_hub.utils import get_session, hf_raise_for_status, validate_repo_id

    validate_repo_id(repo_id)
    headers = {}
    try:
        from huggingface_hub import get_token

        token = get_token()
    except ImportError:  # pragma: no cover - huggingface_hub before 0.21
        token = None
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = get_session().get(
        f"{endpoint()}/api/models/{repo_id}", headers=headers, timeout=probe_timeout()
    )
    if response.status_code == 404:
        return 404
    hf_raise_for_status(response)
    return response.status_code


@contextlib.contextmanager
def quiet_hub():
    """huggingface_hub's warnings ("Retrying in 1s...") off stderr for the block: lenprof says
    in one line what went wrong."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
