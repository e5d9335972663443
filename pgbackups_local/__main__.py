"""`python -m pgbackups_local`: the same as `pgbackups local` (what `make demo` starts)."""

from pgbackups_local.commands import local

local(prog_name="pgbackups local")
