"""The jobs dashboard: admin pages, JSON API, and the queries behind both."""
