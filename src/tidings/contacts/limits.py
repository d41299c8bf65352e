"""Limits on a contact's metadata, shared by the contacts API and the CSV import: what one
accepts, the other must not exceed, or an imported contact could not be sent back through
``PATCH /v1/contacts/:id``."""

MAX_METADATA_KEYS = 100
MAX_METADATA_KEY_LENGTH = 100
