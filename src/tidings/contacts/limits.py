"""Limits on a contact's name and metadata, shared by the contacts API and the CSV import: what
one accepts, the other must not exceed, or an imported contact could not be sent back through
``PATCH /v1/contacts/:id``."""

MAX_NAME_LENGTH = 200  # contacts.name is String(200); counted once the name is composed (NFC)

MAX_METADATA_KEYS = 100
MAX_METADATA_KEY_LENGTH = 100
