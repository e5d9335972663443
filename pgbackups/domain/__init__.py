"""The domain: records, errors (codes, no HTTP), schedules and retention. No I/O."""
