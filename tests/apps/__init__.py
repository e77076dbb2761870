"""Task apps imported by worker processes that the fault and pool tests start."""
