"""Process launcher used by the local runtime's supervisord programs: secrets in, then exec.

supervisord's configuration must not hold secrets, and supervisord cannot read an env file, so each
program starts through this module, which loads the rendered secrets file and ``exec``s the real
command (same pid, so supervisord's signals reach the process itself):

    python -m schedgen_ops.runtime.launch env SECRETS.env -- CMD ...
        variables from SECRETS.env, except those already in the environment (external URLs win)
    python -m schedgen_ops.runtime.launch redis --secrets redis.env --include AUTH.conf -- redis-server ...
        writes ``requirepass`` into AUTH.conf (mode 0600) and adds ``--include AUTH.conf``
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from schedgen_ops.config.secrets import parse_env_file


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: launch MODE ARGS -- COMMAND ...")
    at = argv.index("--")
    command = argv[at + 1 :]
    if not command:
        raise SystemExit("launch: no command after --")
    return argv[:at], command


def _read(path: str) -> dict[str, str]:
    return parse_env_file(Path(path).read_text(encoding="utf-8"))


def env_for(secrets_file: str, environ: dict[str, str]) -> dict[str, str]:
    """The environment a program runs with: the secrets file under whatever is already set."""
    merged = dict(_read(secrets_file))
    merged.update(environ)
    return merged


def write_redis_auth(secrets_file: str, include: str) -> None:
    """Write the requirepass include file (0600) from the redis secrets file."""
    password = _read(secrets_file)["REDIS_PASSWORD"]
    fd = os.open(include, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f'requirepass "{password}"\n')
    os.chmod(include, 0o600)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: launch env|redis ...")
    mode, rest = argv[0], argv[1:]
    options, command = _split(rest)
    if mode == "env":
        if len(options) != 1:
            raise SystemExit("usage: launch env SECRETS.env -- COMMAND ...")
        os.execvpe(command[0], command, env_for(options[0], dict(os.environ)))
    if mode == "redis":
        opts = dict(zip(options[::2], options[1::2], strict=False))
        write_redis_auth(opts["--secrets"], opts["--include"])
        os.execvp(command[0], [*command, "--include", opts["--include"]])
    raise SystemExit(f"launch: unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
