"""One module per resource, each with its `router`; cloud/http/app.py includes them."""
