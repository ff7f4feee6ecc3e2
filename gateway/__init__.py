"""mcode gateway: pulls device logs over BLE, spools them in SQLite, signs and sends batches over MQTT."""
