"""`kracked replay`: topic ranges or Parquet datasets back through the same services, deterministically."""
