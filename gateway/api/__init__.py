"""The JSON API, one Controller per domain; every route is session-guarded app-wide."""
