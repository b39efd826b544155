"""``make secrets``: write a ``.env`` for Docker Compose with strong random secrets.

``.env.example`` is the one list of the stack's variables. Every variable it leaves empty is a
secret: this fills it with a fresh random value (a Fernet key for ``*_FERNET_KEY``, 32 random
bytes, URL-safe, otherwise: safe inside URLs and connection strings). Variables with a value
keep it; commented-out lines stay comments. An existing ``.env`` is never overwritten unless
``--force`` (rotating the database passwords of a running stack needs more than a new file).

    python -m mlops_pipeline.platform.secrets_env [--example .env.example] [--output .env] [--force]
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

from mlops_pipeline.data import storage

ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def secret_value(name: str) -> str:
    if name.endswith("FERNET_KEY"):
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(32)


def render(example: str) -> tuple[str, list[str]]:
    """The ``.env`` text for ``example`` and the names of the secrets generated."""
    lines, generated = [], []
    for line in example.splitlines():
        match = ASSIGNMENT.match(line)
        if match and not match["value"].strip():
            line = f"{match['name']}={secret_value(match['name'])}"
            generated.append(match["name"])
        lines.append(line)
    return "\n".join(lines) + "\n", generated


def write_env(example: Path, output: Path, force: bool = False) -> list[str]:
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists; pass --force to replace its secrets")
    text, generated = render(example.read_text())
    storage.write_private(output, text)
    return generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=Path(".env.example"))
    parser.add_argument("--output", type=Path, default=Path(".env"))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        generated = write_env(args.example, args.output, args.force)
    except FileExistsError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"wrote {args.output} (mode 600) with {len(generated)} new secrets: {', '.join(generated)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
