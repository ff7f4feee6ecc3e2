"""mcode cloud v0: verifies and stores gateway batches, resolves typed M-codes, tracks share chains,
records orders and splits reward pools. Nothing is built at import time: see `cloud.app.create_app`
and `cloud.db.make_engine`."""
