"""How databases and backups are named: plain patterns, no third-party imports.

Kept apart from `models` so that the CLI can check a name without loading
pydantic (its start-up time is measured in `make bench`).
"""

from __future__ import annotations

import re

DATABASE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# DATABASE_NAME in words: what the API and the CLI say of a name that does not match.
DATABASE_NAME_RULE = "1 to 63 lowercase letters, digits, _ and -, starting with a letter or digit"
# A ULID: 26 characters of Crockford's base 32.
BACKUP_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
