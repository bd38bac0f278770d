"""utils package: safe I/O (atomic writes, restricted unpickling)."""
