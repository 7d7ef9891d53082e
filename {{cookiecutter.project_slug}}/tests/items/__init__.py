"""The example API's tests: on SQLite, on PostgreSQL, and its migrations."""

import re

# created_at on every backend: UTC, microseconds, "Z".
UTC_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
