"""One powertools Router per resource; `pgbackups.api.app` mounts them."""
