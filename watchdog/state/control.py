"""The operator inbox: CLI ↔ daemon through files in the state directory (adapter).

No socket, no network surface: the state directory's permissions (0700, the daemon's user)
are the access control. Owns ``requests/`` and ``responses/``; the locks that say whether a
daemon runs and who may write the state are in :mod:`watchdog.state.locks`.

How the CLI uses it:
- **A daemon is running** (:func:`~watchdog.state.locks.daemon_running` returns its pid): the
  CLI :func:`submit`-s a :class:`Request` and awaits :func:`wait_response`. The daemon
  :func:`take_requests` on its tick, applies each one *through the policy* — so budget
  bookkeeping and the one-power-action-in-flight rule stay in one place — and
  :func:`respond`-s.
- **No daemon**: ``pause``/``resume``/``clear`` edit ``state.json`` directly under
  :func:`~watchdog.state.locks.state_lock`.
- ``cycle`` without a daemon is refused (:attr:`Op.needs_daemon`): a power cycle must run
  the daemon's procedure (intent on disk, verify off, hold, on, boot grace, budget); a
  one-shot CLI that dies half-way would leave a node off with nobody to finish the cycle.

A request the daemon took but never answered (it died) shows up at the CLI as a
``wait_response`` timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from watchdog.core.errors import ControlError
from watchdog.edge.bounded import FileRefused, read_regular_file
from watchdog.state import atomic_file

log = logging.getLogger("watchdog.control")

REQUESTS = "requests"
RESPONSES = "responses"
REJECTED = "rejected"  # under requests/: malformed request files, kept for a human
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_REQUEST_BYTES = 64 * 1024  # a request is about 150 bytes
_STALE_RESPONSE_AGE = 3600.0  # answers nobody collected (the CLI gave up) are pruned after this


class Op(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CLEAR = "clear"
    CYCLE = "cycle"

    @property
    def needs_daemon(self) -> bool:
        """Only the daemon may run it; without one the CLI refuses instead of editing state."""
        return self is Op.CYCLE


@dataclass(frozen=True)
class Request:
    id: str
    op: Op
    node: str
    until: float | None = None  # PAUSE only: unix time the pause ends; None = indefinitely
    requested_at: float = 0.0


@dataclass(frozen=True)
class Response:
    id: str
    ok: bool
    message: str


def new_request(op: Op, node: str, *, until: float | None = None, now: float) -> Request:
    """A request with a fresh id that sorts by time and cannot collide."""
    return Request(f"{int(now * 1000):012x}-{secrets.token_hex(6)}", op, node, until, now)


def submit(directory: Path, request: Request) -> None:
    """Atomically drop ``requests/<id>.json`` for the daemon to take."""
    body = {
        "id": _checked_id(request.id),
        "op": request.op.value,
        "node": request.node,
        "until": request.until,
        "requested_at": request.requested_at,
    }
    _write_atomic(Path(directory) / REQUESTS, request.id, body)


def take_requests(directory: Path) -> list[Request]:
    """Read and remove pending requests, oldest first; malformed ones are set aside.

    A malformed file goes to ``requests/rejected/``, is logged, and — if its name is a valid
    id — answered with ``ok=False`` so the waiting CLI hears why instead of timing out.
    """
    folder = Path(directory) / REQUESTS
    try:
        # Anything but a directory: a FIFO or device named *.json is set aside, not skipped.
        names = sorted(p for p in folder.glob("*.json") if not p.is_dir())
    except OSError as exc:
        raise ControlError(f"cannot list {folder}: {exc}") from exc
    taken: list[Request] = []
    for path in names:
        try:
            request = _parse_request(path)
        except FileNotFoundError:
            continue  # gone between listing and reading: nothing to set aside
        except (OSError, ValueError, TypeError, KeyError, RecursionError, FileRefused) as exc:
            # One bad file is answered and set aside; the others in this batch still run.
            _reject(directory, path, f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        # Removing the file is the claim: a CLI that gave up waiting withdraws its request by
        # deleting it first, and a withdrawn request must never run.
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        taken.append(request)
    return sorted(taken, key=lambda r: (r.requested_at, r.id))


def respond(directory: Path, response: Response) -> None:
    """Atomically write ``responses/<id>.json``; prunes answers nobody collected."""
    folder = Path(directory) / RESPONSES
    body = {"id": _checked_id(response.id), "ok": response.ok, "message": response.message}
    _write_atomic(folder, response.id, body)
    cutoff = time.time() - _STALE_RESPONSE_AGE
    for old in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


# The timeout is part of the answer (None = daemon did not answer), not a cancellation.
async def wait_response(
    directory: Path,
    request_id: str,
    *,
    timeout: float,  # noqa: ASYNC109
    poll: float = 0.1,
) -> Response | None:
    """The daemon's answer to ``request_id`` (consumed), or None after ``timeout`` seconds."""
    path = Path(directory) / RESPONSES / f"{_checked_id(request_id)}.json"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            # Bounded like a request: a FIFO or a huge file there never hangs the command.
            raw = json.loads(read_regular_file(path, _MAX_REQUEST_BYTES).decode("utf-8"))
            response = Response(str(raw["id"]), bool(raw["ok"]), str(raw["message"]))
        except FileNotFoundError:
            pass
        except (FileRefused, OSError, ValueError, TypeError, KeyError) as exc:
            raise ControlError(f"unreadable response {path}: {exc}") from exc
        else:
            with contextlib.suppress(OSError):
                path.unlink()
            return response
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(min(poll, max(0.0, deadline - loop.time())))


# --- internals -----------------------------------------------------------------------------


def _parse_request(path: Path) -> Request:
    # Non-blocking and capped: a FIFO or a huge file in requests/ cannot stall the daemon.
    raw: Any = json.loads(read_regular_file(path, _MAX_REQUEST_BYTES).decode("utf-8"))
    if not isinstance(raw, dict) or set(raw) != {"id", "op", "node", "until", "requested_at"}:
        raise ValueError("expected an object with id, op, node, until, requested_at")
    if raw["id"] != path.stem or not _ID.fullmatch(path.stem):
        raise ValueError(f"id {raw['id']!r} does not match the file name")
    if not isinstance(raw["node"], str) or not raw["node"]:
        raise ValueError("node must be a non-empty string")
    for key in ("until", "requested_at"):
        value = raw[key]
        if (value is None and key == "until") or (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and abs(value) < 1e12  # also excludes inf and a 400-digit integer; NaN below
            and value == value
        ):
            continue
        raise ValueError(f"{key} must be a number")
    until = None if raw["until"] is None else float(raw["until"])
    return Request(path.stem, Op(raw["op"]), raw["node"], until, float(raw["requested_at"]))


def _reject(directory: Path, path: Path, why: str) -> None:
    log.warning("malformed control request %s set aside: %s", path.name, why)
    aside = path.parent / REJECTED
    try:
        aside.mkdir(mode=0o700, exist_ok=True)
        path.rename(aside / f"{path.name}.{int(time.time())}")
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()  # never let one bad file be re-read on every tick
    if _ID.fullmatch(path.stem):
        with contextlib.suppress(OSError, ControlError):
            respond(directory, Response(path.stem, False, f"malformed request: {why}"))


def _write_atomic(folder: Path, name: str, body: dict[str, Any]) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_file.adopt_directory(folder)
        text = json.dumps(body, allow_nan=False)
        atomic_file.write_atomic(folder / f"{name}.json", text.encode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ControlError(f"cannot write {folder / name}.json: {exc}") from exc


def _checked_id(request_id: str) -> str:
    # Ids become file names: refuse anything that could climb out of the directory.
    if not _ID.fullmatch(request_id):
        raise ControlError(f"invalid request id {request_id!r}")
    return request_id
