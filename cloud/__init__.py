"""mcode cloud v0: verifies and stores gateway batches, resolves typed M-codes, tracks share chains,
records orders and splits reward pools. Nothing is built at import time: see `cloud.http.app.create_app`
and `cloud.store.engine.make_engine`."""
