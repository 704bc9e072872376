"""A local static HTTP server on 127.0.0.1 serving a directory, with single-range support.

    with StaticHttpServer(directory) as server:
        HttpStore(server.url) ...          # http://127.0.0.1:<port>

``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` get ``206 Partial Content`` (an
unsatisfiable range gets ``416``); anything else is a plain ``200``. Requests are counted in
:attr:`StaticHttpServer.requests`; access logging is off.
"""

from __future__ import annotations

import http.server
import os
import re
import threading
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler with HTTP/1.1 keep-alive and single byte ranges for files."""

    protocol_version = "HTTP/1.1"
    timeout = 5  # idle keep-alive connections end, so no handler thread lingers for long
    counter: list[int]  # set per server through functools.partial
    _range_left: int | None = None

    def __init__(self, *args: Any, counter: list[int], **kwargs: Any) -> None:
        self.counter = counter
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        self.counter[0] += 1
        path = self.translate_path(self.path)
        header = self.headers.get("Range")
        if header is None or not os.path.isfile(path):
            return super().send_head()
        match = _RANGE.match(header.strip())
        size = os.path.getsize(path)
        if match is None or match.groups() == ("", ""):
            return super().send_head()
        first, last = match.groups()
        if first == "":  # suffix: the last n bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), (min(int(last), size - 1) if last else size - 1)
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        fh = open(path, "rb")  # noqa: SIM115 (closed by copyfile's caller, like the base class)
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._range_left = end - start + 1
        return fh

    def copyfile(self, source: Any, outputfile: Any) -> None:
        left = getattr(self, "_range_left", None)
        if left is None:
            super().copyfile(source, outputfile)
            return
        self._range_left = None
        while left > 0:
            chunk = source.read(min(left, 65536))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


class StaticHttpServer:
    """A threaded ``http.server`` for ``directory`` on 127.0.0.1 and a free port."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._counter = [0]
        handler = partial(RangeRequestHandler, directory=str(directory), counter=self._counter)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return self._counter[0]

    def start(self) -> StaticHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticHttpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
