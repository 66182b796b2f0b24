"""A network exchange bounded as a whole: one deadline over connect, TLS handshake, every
send and every receive, and a cap on the bytes received.

The host's name is looked up within the deadline too. A socket's own timeout bounds
each operation, not the exchange: a server that sends
one byte every two seconds never trips a 30-second timeout. Here each operation's
timeout is the time left before the deadline, so the exchange ends at it whatever the
server does, and a server that never stops talking stops being read at `limit` bytes.
Imported by notify when it sends (loading the treatments stays fast).
"""

from __future__ import annotations

import errno
import socket
import ssl
import threading
import time
from typing import Any


class Deadline:
    """`seconds` for the whole exchange, at most `limit` bytes received; `until` (a
    time.monotonic() value): the end of an exchange of several attempts, each of its
    own deadline, that began before this one."""

    def __init__(self, seconds: float, limit: int, until: float | None = None) -> None:
        self.seconds = seconds
        self.limit = limit
        self.at = time.monotonic() + seconds if until is None else until
        self.received = 0
        # the classes of this exchange's sockets: an SSL socket is made by the
        # context (`wrap_socket`), the handshake included, so it reads its deadline
        # from its class
        self.socket_class: type[socket.socket] = type(
            "BoundedSocket", (_BoundedSocket,), {"deadline": self}
        )
        self.ssl_class: type[ssl.SSLSocket] = type(
            "BoundedSSLSocket", (_BoundedSSLSocket,), {"deadline": self}
        )

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(errno.ETIMEDOUT, f"no complete exchange within {self.seconds} s")
        return left

    def count(self, received: int) -> None:
        self.received += received
        if self.received > self.limit:
            raise OSError(errno.EMSGSIZE, f"the server sent more than {self.limit} bytes")

    def tls(self) -> ssl.SSLContext:
        """A default (verifying) TLS context whose sockets keep this deadline."""
        context = ssl.create_default_context()
        context.sslsocket_class = self.ssl_class
        return context

    def resolve(self, host: str, port: int) -> list[Any]:
        """`host`'s addresses, looked up within the deadline: the resolver has no timeout
        of its own to set, so it asks in a thread of its own, left behind (a daemon) if
        it never answers."""
        answer: list[Any] = []

        def look_up() -> None:
            try:
                answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except OSError as exc:
                answer.append(exc)

        thread = threading.Thread(target=look_up, name="postsync-resolve", daemon=True)
        thread.start()
        thread.join(self.left())
        if not answer:
            raise TimeoutError(
                errno.ETIMEDOUT, f"{host}: no answer from the resolver within {self.seconds} s"
            )
        if isinstance(answer[0], OSError):
            raise answer[0]
        return list(answer[0])

    def connect(self, host: str, port: int) -> socket.socket:
        """A TCP connection to `host`, its operations bounded by this deadline."""
        error: OSError | None = None
        for family, kind, proto, _name, address in self.resolve(host, port):
            sock = self.socket_class(family, kind, proto)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                error = exc
                if self.expired():
                    break
                continue
            return sock
        raise error or OSError(errno.EHOSTUNREACH, f"{host}: no address")


class _BoundedSocket(socket.socket):
    deadline: Deadline

    def _arm(self) -> None:
        super().settimeout(self.deadline.left())

    def connect(self, address: Any, /) -> None:
        self._arm()
        super().connect(address)

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        self._arm()
        data = super().recv(bufsize, flags)
        self.deadline.count(len(data))
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> int:
        self._arm()
        received = super().recv_into(buffer, nbytes, flags)
        self.deadline.count(received)
        return received

    def send(self, data: Any, flags: int = 0, /) -> int:
        self._arm()
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0, /) -> None:
        self._arm()
        super().sendall(data, flags)


class _BoundedSSLSocket(ssl.SSLSocket):
    # SSLSocket's recv, recv_into go through read, sendall through send: the C layer
    # reads the socket's timeout at each call
    deadline: Deadline

    def _arm(self) -> None:
        self.settimeout(self.deadline.left())

    def do_handshake(self, block: bool = False) -> None:
        self._arm()
        super().do_handshake(block)

    def read(self, size: int = 1024, buffer: Any = None) -> Any:
        self._arm()
        data = super().read(size, buffer)
        self.deadline.count(data if isinstance(data, int) else len(data))
        return data

    def send(self, data: Any, flags: int = 0) -> int:
        self._arm()
        return super().send(data, flags)
