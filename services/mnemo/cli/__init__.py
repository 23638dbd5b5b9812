"""The `mnemo` command line: `mnemo up` (the local stack), `mnemo run` (chat) and management commands."""
