"""The sandbox child: parse requests one at a time under RLIMIT_AS and RLIMIT_CPU (`parsing.sandbox`).

Run as ``python -m schedgen_ops.parsing.sandbox_child --memory-mb N --preload parse|check``. It imports
the parser first (so a request never pays for it), then lowers its own address-space limit to N MB
and answers length-prefixed frames on stdin/stdout until stdin closes. Before each request it moves its
CPU limit to "used so far + the request's timeout + `CPU_GRACE_S`" and resets the kernel's peak-RSS
counter, so every reply carries that request's own peak memory. Nothing here trusts the PDF: the worst
a request can do is run out of memory (a `parse_limit_exceeded` reply, then this process exits so a
fresh one takes over) or time (SIGXCPU, or the parent's kill).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import resource
import struct
import sys
import time
from typing import Any, BinaryIO

CPU_GRACE_S = 2.0  # past the request's timeout: the cooperative deadline and the alarm come first
_LEN = struct.Struct(">I")
_PRELOAD = {
    "check": ("schedgen_ops.parsing.check",),
    "parse": ("schedgen_ops.parsing.check", "schedgen_ops.parsing.api"),
}


def write_frame(out: BinaryIO, data: bytes) -> None:
    out.write(_LEN.pack(len(data)) + data)


def read_frame(inp: BinaryIO) -> bytes | None:
    """One frame, or None at a clean end of input."""
    head = inp.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (size,) = _LEN.unpack(head)
    data = inp.read(size)
    if len(data) < size:
        return None
    return data


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass


def _limit_cpu(timeout_s: float) -> None:
    used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used + timeout_s + CPU_GRACE_S)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _handle(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    from schedgen_ops.parsing.errors import ParseError

    op = header.get("op")
    if op == "status":
        loaded = [name for name in ("pdfminer.pdfinterp", "schedgen_ops.parsing.api") if name in sys.modules]
        return {"ok": True, "pid": os.getpid(), "modules": loaded, "vm_kb": _status_kb("VmSize")}, b""
    timeout_s = float(header["timeout_s"])
    _limit_cpu(timeout_s)
    options: dict[str, Any] = {
        "max_bytes": int(header["max_bytes"]),
        "max_pages": int(header["max_pages"]),
        "timeout_s": timeout_s,
    }
    if header.get("limits"):
        from schedgen_ops.parsing.limits import Limits

        options["limits"] = Limits(**header["limits"])
    try:
        if op == "check":
            from schedgen_ops.parsing.check import quick_check

            return {"ok": True, "pages": quick_check(payload, **options)}, b""
        if op == "parse":
            from schedgen_ops.parsing.api import parse_pdf

            timetable = parse_pdf(payload, filename=header.get("filename"), **options)
            return {"ok": True}, timetable.model_dump_json().encode()
    except ParseError as exc:
        return {"ok": False, "code": exc.code, "message": exc.message}, b""
    raise ValueError(f"unknown sandbox request {op!r}")


def serve(inp: BinaryIO, out: BinaryIO, *, recycle_kb: int) -> int:
    """Answer requests until stdin closes, or until a request leaves this process bloated (resident
    memory above ``recycle_kb`` after a MemoryError or a big file: malloc keeps what Python freed)."""
    write_frame(out, json.dumps({"ready": True, "pid": os.getpid()}).encode())
    out.flush()
    while True:
        raw = read_frame(inp)
        payload = read_frame(inp) if raw is not None else None
        if raw is None or payload is None:
            return 0
        _reset_peak()
        started = time.monotonic()
        exit_after = False
        try:
            reply, body = _handle(json.loads(raw), payload)
        except MemoryError:
            reply, body, exit_after = _memory_reply(), b"", True
        except Exception as exc:  # a bug, not the file: the parent retries the job
            reply, body = {"ok": False, "crash": f"{type(exc).__name__}: {exc}"[:300]}, b""
        reply["wall_s"] = round(time.monotonic() - started, 4)
        reply["peak_rss_kb"] = _status_kb("VmHWM")
        if (_status_kb("VmRSS") or 0) > recycle_kb:
            exit_after = True
        if exit_after:
            reply["exiting"] = True
        write_frame(out, json.dumps(reply).encode())
        write_frame(out, body)
        out.flush()
        if exit_after:
            return 0


def _memory_reply() -> dict[str, Any]:
    return {
        "ok": False,
        "code": "parse_limit_exceeded",
        "message": "the PDF exceeds a parser limit: parsing it needs more memory than a parse may use",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="schedgen_ops.parsing.sandbox_child")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--preload", choices=sorted(_PRELOAD), default="parse")
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own descriptor: stray prints go to stderr instead
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb")
    logging.disable(logging.CRITICAL)  # pdfminer's per-object warnings on damaged files are noise here
    import importlib

    for module in _PRELOAD[args.preload]:
        importlib.import_module(module)
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return serve(inp, out, recycle_kb=limit // 1024 // 2)


if __name__ == "__main__":
    sys.exit(main())
