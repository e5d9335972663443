"""`python -m pgbackups.local`: the same as `pgbackups local` (what `make demo` starts)."""

from pgbackups.local.commands import local

local(prog_name="pgbackups local")
