"""Web pages: Jinja2 templates (templates/) and static assets (static/), rendered for the HTTP
floor (cloud/http). Nothing here knows about requests: a page is a function of its data."""
