"""The example domain: items stored in the database and read through the cache."""
