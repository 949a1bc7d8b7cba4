"""A small client of the charter-daemon control socket (protocol 1), standard library only.

The protocol is NDJSON over a Unix-domain socket: docs/control-protocol.md describes it and
docs/control.v1.schema.json is its JSON Schema. This module finds a project's socket, connects,
says hello, matches responses to requests by id (so a stream can stay open while other calls
are made on the same connection), reads streams (`more: true`), and raises every error as a
`CharterError` with the daemon's code, message and hint. Every read has a deadline.

    from charter_client import Client

    with Client.connect("/path/to/project") as client:
        print(client.call("status")["state"])
        for batch in client.stream("run.logs", {"run_id": run_id, "follow": True}):
            ...
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

#: The control protocol version this client speaks (`CONTROL_PROTOCOL_VERSION`).
PROTOCOL_VERSION = 1
#: A line may be at most 1 MiB, counted before the newline ("Framing").
MAX_LINE_BYTES = 1024 * 1024
#: Arrays and objects may nest at most 64 levels deep ("Framing").
MAX_JSON_DEPTH = 64
#: Responses kept for requests other than the one being read, before the client gives up.
MAX_QUEUED_RESPONSES = 10_000
#: Seconds to wait for each response, unless a call says otherwise.
DEFAULT_TIMEOUT = 10.0

CLIENT_VERSION = "python-example/1"


class CharterError(Exception):
    """An error from the daemon (its code, message and hint), or met while talking to it.

    Codes are those of the error table of docs/control-protocol.md. The client raises
    DAEMON_NOT_RUNNING, SOCKET_PERMISSION_DENIED, DAEMON_NOT_ANSWERING (no answer before the
    deadline, or the connection closed), BAD_RESPONSE (a line that is not a response) and
    PROTOCOL_MISMATCH itself, as the charter-daemon CLI does.
    """

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.message} ({self.code})"
        return f"{text}\n  {self.hint}" if self.hint else text


def find_socket(project_root: str | os.PathLike[str]) -> str:
    """The socket of a project's daemon ("Where the socket is" in docs/control-protocol.md).

    A running daemon writes the path it listens on to `socket_path` in
    `.charter/daemon/daemon.json`; without that file (or a readable path in it) this is the
    usual `<root>/.charter/daemon/daemon.sock`. The project root is taken as its real path,
    as the daemon does.
    """
    state_dir = os.path.join(os.path.realpath(project_root), ".charter", "daemon")
    try:
        with open(os.path.join(state_dir, "daemon.json"), "rb") as file:
            info = json.loads(file.read(64 * 1024))
        path = info.get("socket_path") if isinstance(info, dict) else None
        if isinstance(path, str) and path:
            return path
    except (OSError, ValueError, RecursionError):
        pass  # no daemon.json, or one being rewritten: the default path
    return os.path.join(state_dir, "daemon.sock")


class Client:
    """One connection to a daemon, greeted with `hello`. Not thread-safe."""

    def __init__(
        self,
        socket_path: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: IO[str] | None = None,
        client_version: str = CLIENT_VERSION,
    ) -> None:
        """Connects to `socket_path` and says hello.

        `timeout` bounds the connect and every read. `transcript`, when given, receives every
        line sent and received, in order, as NDJSON (one protocol message per line).
        """
        self.timeout = timeout
        self._transcript = transcript
        self._ids = itertools.count(0)
        self._buffer = bytearray()
        self._in_flight: set[int] = set()
        self._abandoned: set[int] = set()
        self._queued: dict[int, deque[dict[str, Any]]] = {}
        self._queued_count = 0
        self._failure: CharterError | None = None
        self._sock = _connect(socket_path, timeout)
        try:
            self.hello = self.call(
                "hello", {"protocol": PROTOCOL_VERSION, "client_version": client_version}
            )
        except BaseException:
            self.close()
            raise
        if self.hello.get("protocol") != PROTOCOL_VERSION:
            self.close()
            raise CharterError(
                "PROTOCOL_MISMATCH",
                f"the daemon speaks control protocol {self.hello.get('protocol')!r}, "
                f"this client {PROTOCOL_VERSION}",
            )

    @classmethod
    def connect(cls, project_root: str | os.PathLike[str], **options: Any) -> Client:
        """Connects to the daemon of a project (see `find_socket`)."""
        return cls(find_socket(project_root), **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Sends one request and returns its result; raises CharterError on an error response.

        For a method that streams, use `stream`.
        """
        request_id = self._send(method, params)
        response = self._next_response(request_id, timeout)
        if response.get("more") is True:
            self._abandon(request_id)
            raise CharterError("BAD_RESPONSE", f"{method} answered with a stream: use stream()")
        return response["result"]

    def stream(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Iterator[Any]:
        """Sends one request and yields the result of each response until the last one.

        The request is sent when the iteration starts. `timeout` bounds the wait for each
        response, not the whole stream. Other calls may be made on this client while the stream
        is open; leaving the loop early drops the rest of it.
        """
        request_id = self._send(method, params)
        finished = False
        try:
            while True:
                response = self._next_response(request_id, timeout)
                finished = response.get("more") is not True
                yield response["result"]
                if finished:
                    return
        finally:
            if not finished:
                self._abandon(request_id)

    # ---- the wire --------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None) -> int:
        self._check_usable()
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "method": method, "params": params or {}}, separators=(",", ":"))
        self._record(line)
        try:
            self._sock.sendall(line.encode("utf-8") + b"\n")
        except OSError as error:
            raise self._fail(CharterError("DAEMON_NOT_ANSWERING", f"cannot send to the daemon: {error}"))
        self._in_flight.add(request_id)
        return request_id

    def _next_response(self, request_id: int, timeout: float | None) -> dict[str, Any]:
        """The next response to `request_id`, keeping those of other requests for later."""
        queued = self._queued.get(request_id)
        if queued:
            self._queued_count -= 1
            return self._settle(request_id, queued.popleft())
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            self._check_usable()
            try:
                response = _parse_response(self._read_line(deadline))
            except CharterError as error:
                raise self._fail(error) from None
            response_id = response["id"]
            if response_id is None:
                # About the whole connection (idle timeout, too many clients, draining, a line it
                # could not read): the daemon closes it ("Connection-level errors").
                error = response.get("error")
                if response["ok"] is not False or not isinstance(error, dict):
                    raise self._fail(CharterError("BAD_RESPONSE", "a successful response without an id"))
                raise self._fail(CharterError(error["code"], error["message"], error.get("hint")))
            if response_id == request_id:
                return self._settle(request_id, response)
            if response_id not in self._in_flight:
                never_sent = f"a response to id {response_id!r}, which was never sent"
                raise self._fail(CharterError("BAD_RESPONSE", never_sent))
            if response_id in self._abandoned:
                self._forget_if_last(response_id, response)
                continue
            if self._queued_count >= MAX_QUEUED_RESPONSES:
                raise self._fail(CharterError("BAD_RESPONSE", "too many responses left unread"))
            self._queued.setdefault(response_id, deque()).append(response)
            self._queued_count += 1

    def _settle(self, request_id: int, response: dict[str, Any]) -> dict[str, Any]:
        """Ends the request at its last response; turns an error response into CharterError."""
        self._forget_if_last(request_id, response)
        if response["ok"] is False:
            error = response["error"]
            raise CharterError(error["code"], error["message"], error.get("hint"))
        return response

    def _forget_if_last(self, request_id: int, response: dict[str, Any]) -> None:
        if response.get("more") is True:
            return
        self._in_flight.discard(request_id)
        self._abandoned.discard(request_id)

    def _abandon(self, request_id: int) -> None:
        """Drops what is left of a stream: its queued responses now, the rest as they arrive."""
        queued = self._queued.pop(request_id, deque())
        self._queued_count -= len(queued)
        if any(response.get("more") is not True for response in queued):
            self._in_flight.discard(request_id)  # its last response had already come
        else:
            self._abandoned.add(request_id)

    def _read_line(self, deadline: float) -> str:
        while True:
            newline = self._buffer.find(b"\n")
            if newline > MAX_LINE_BYTES or (newline < 0 and len(self._buffer) > MAX_LINE_BYTES):
                raise self._fail(CharterError("BAD_RESPONSE", "the daemon sent a line over 1 MiB"))
            if newline >= 0:
                raw = bytes(self._buffer[:newline]).removesuffix(b"\r")
                del self._buffer[: newline + 1]
                if not raw.strip():
                    continue  # blank lines carry nothing
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise self._fail(CharterError("BAD_RESPONSE", "the daemon sent a line that is not UTF-8"))
                self._record(line)
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(CharterError("DAEMON_NOT_ANSWERING", "no response before the deadline"))
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(64 * 1024)
            except TimeoutError:
                continue  # the deadline check above ends it
            except OSError as error:
                message = f"cannot read from the daemon: {error}"
                raise self._fail(CharterError("DAEMON_NOT_ANSWERING", message))
            if not chunk:
                raise self._fail(CharterError("DAEMON_NOT_ANSWERING", "the daemon closed the connection"))
            self._buffer += chunk

    def _record(self, line: str) -> None:
        if self._transcript is not None:
            self._transcript.write(line + "\n")
            self._transcript.flush()

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, error: CharterError) -> CharterError:
        """Marks the connection unusable (its stream of lines can no longer be trusted)."""
        self._failure = error
        self.close()
        return error


def _connect(socket_path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        raise CharterError(
            "DAEMON_NOT_RUNNING",
            f"no daemon is listening on {socket_path}",
            "Start it with `charter-daemon start --project-path PATH`.",
        ) from None
    except PermissionError:
        sock.close()
        message = f"cannot open {socket_path}: permission denied"
        raise CharterError("SOCKET_PERMISSION_DENIED", message) from None
    except TimeoutError:
        sock.close()
        message = f"could not connect to {socket_path} within {timeout}s"
        raise CharterError("DAEMON_NOT_ANSWERING", message) from None
    except OSError as error:
        sock.close()
        raise CharterError("DAEMON_NOT_ANSWERING", f"cannot connect to {socket_path}: {error}") from None
    return sock


def _parse_response(line: str) -> dict[str, Any]:
    """A response envelope, checked as far as this client relies on it."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        raise CharterError("BAD_RESPONSE", "the daemon sent a line that is not JSON") from None
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise CharterError("BAD_RESPONSE", f"the daemon sent JSON nested more than {MAX_JSON_DEPTH} deep")
    ok = value.get("ok") if isinstance(value, dict) else None
    # This client sends integer ids; `true` must not pass for 1.
    request_id = value.get("id", False) if isinstance(value, dict) else False
    id_shaped = request_id is None or (type(request_id) in (int, str))
    shaped = id_shaped and (
        (ok is True and "result" in value)
        or (
            ok is False
            and isinstance(value.get("error"), dict)
            and isinstance(value["error"].get("code"), str)
            and isinstance(value["error"].get("message"), str)
        )
    )
    if not shaped:
        raise CharterError("BAD_RESPONSE", "the daemon sent a response of an unknown shape")
    return value


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (`{"a": [1]}` is 2); no recursion."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
