"""The HTTP floor: the app factory (app.py), dependencies (deps.py), input and output schemas
(inputs.py, schemas.py), rate limiting (ratelimit.py), and routes per resource (routes/). Handlers
stay thin: the work is in cloud/services."""
