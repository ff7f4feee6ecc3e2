"""BLE access for the gateway: pick a bleak backend in gateway.ble.factory (platform or bumble)."""
