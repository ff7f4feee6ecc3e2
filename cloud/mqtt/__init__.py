"""The MQTT edge: the ingest worker, the gateway-config publisher and the report listener, all on
one paho client factory (client.py). The work they do is in cloud/services."""
