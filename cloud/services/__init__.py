"""The cloud's rules, one module per resource. Services take a session factory and plain values and
raise cloud.errors.ApiError; they know nothing of HTTP, pages, MQTT or the command line (a contract
test, tests/cloud/test_layers.py, keeps it so)."""
