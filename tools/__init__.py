"""Field technicians' tools: build, flash, provision and diagnose devices."""
