"""The virtual world mcode runs in here: broker, radio, devices, phones, shoppers."""
