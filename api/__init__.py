"""The read-only HTTP API over the projections: `main.create_app`, one router per resource
in `routes`, and every query it runs in `views`."""
