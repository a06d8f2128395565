"""Model files by address: ``hf://OWNER/REPO[@REVISION][/FILE]`` and ``https://…[#sha256=…]``.

Wherever a model file is read (:func:`~fcnseg.load`, ``predict``, ``eval``, ``export``,
``--init-from``), such an address stands for the file. It is downloaded once into the standard
cache of its kind and read from there after:

* ``hf://`` through ``huggingface_hub`` into the Hugging Face cache (``HF_HUB_CACHE``,
  ``HF_HOME``), which other libraries share; ``FILE`` defaults to ``model.safetensors``, the
  name ``fcnseg push`` gives it;
* ``https://`` into torch hub's ``checkpoints`` folder (``TORCH_HOME``), in a sub-folder per
  address so that two files of the same name never stand for each other. A ``#sha256=HEX``
  suffix is checked on every read, as pip does.

With ``HF_HUB_OFFLINE=1`` nothing is downloaded: a file not yet in the cache is an error that
says so.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
from pathlib import Path

from .. import __version__
from ..errors import CheckpointError

__all__ = ["DEFAULT_FILE", "is_remote", "locate"]

DEFAULT_FILE = "model.safetensors"
_SCHEMES = ("hf://", "https://", "http://")


def is_remote(spec: str | Path) -> bool:
    """Whether ``spec`` is an address rather than a local path."""
    return isinstance(spec, str) and spec.startswith(_SCHEMES)


def locate(spec: str | Path) -> Path:
    """The local file that ``spec`` names: a path as it is, an address from the cache
    (downloaded first if need be).

    Raises:
        CheckpointError: a malformed address, a file that cannot be fetched, or one whose
            hash differs from the address's ``#sha256=``.
    """
    if not is_remote(spec):
        return Path(spec)
    text = str(spec)
    return _from_hub(text) if text.startswith("hf://") else _from_url(text)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _from_hub(spec: str) -> Path:
    parts = spec.removeprefix("hf://").split("/")
    if len(parts) < 2 or not all(parts):
        raise CheckpointError(
            f"{spec}: expected hf://OWNER/REPO[@REVISION][/FILE], e.g. hf://me/fcn-camvid"
        )
    repo, revision = "/".join(parts[:2]), None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    filename = "/".join(parts[2:]) or DEFAULT_FILE
    try:
        import huggingface_hub as hub
        from huggingface_hub import errors
    except ImportError:
        raise CheckpointError(
            f"{spec}: reading from the Hugging Face Hub needs huggingface_hub: "
            "pip install 'fcnseg[hub]'"
        ) from None
    try:
        return Path(
            hub.hf_hub_download(
                repo,
                filename,
                revision=revision,
                local_files_only=_offline(),
                library_name="fcnseg",
                library_version=__version__,
            )
        )
    except errors.LocalEntryNotFoundError:
        how = (
            "HF_HUB_OFFLINE is set: unset it to download"
            if _offline()
            else "the Hub cannot be reached: check the network, or fill the cache"
        )
        raise CheckpointError(f"{spec}: not in the Hugging Face cache and {how}") from None
    except errors.RepositoryNotFoundError:
        raise CheckpointError(
            f"{spec}: no repository {repo} on the Hub (or it is private: log in with `hf auth "
            "login`)"
        ) from None
    except errors.RevisionNotFoundError:
        raise CheckpointError(f"{spec}: {repo} has no revision {revision}") from None
    except errors.EntryNotFoundError:
        raise CheckpointError(
            f"{spec}: {repo} has no file {filename}; name it: hf://{repo}/FILE"
        ) from None
    except (errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(f"{spec}: cannot be fetched ({str(exc).splitlines()[0]})") from None


def _from_url(spec: str) -> Path:
    import torch.hub

    url, _, fragment = spec.partition("#")
    expected = None
    if fragment:
        key, _, value = fragment.partition("=")
        if key != "sha256" or len(value) != 64 or not _is_hex(value):
            raise CheckpointError(
                f"{spec}: the only suffix understood is #sha256= and 64 hex digits"
            )
        expected = value.lower()
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or DEFAULT_FILE
    where = hashlib.sha256(url.encode()).hexdigest()[:16]
    path = Path(torch.hub.get_dir()) / "checkpoints" / "fcnseg" / where / name
    if not path.is_file():
        if _offline():
            raise CheckpointError(
                f"{spec}: not in the cache ({path}) and HF_HUB_OFFLINE is set: unset it to download"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # written beside and renamed when whole: an interrupted download leaves nothing
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{spec}: cannot be downloaded ({str(exc).splitlines()[0]})"
            ) from None
    if expected and _sha256(path) != expected:
        path.unlink()
        raise CheckpointError(
            f"{spec}: the file's sha256 differs from the address's (removed from the cache); "
            "check the address, or drop #sha256= if the file was meant to change"
        )
    return path


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
