"""Errors raised by the inbox domain.

Exception tree::

    InboxError
    ├── MigrationError        a changed, missing or duplicate migration; a database newer than the code
    ├── NotFound              no such object in this account
    └── Conflict              a uniqueness rule would be broken (e.g. provider identity claimed twice)
"""

from __future__ import annotations


class InboxError(Exception):
    pass


class MigrationError(InboxError):
    pass


class NotFound(InboxError):
    pass


class Conflict(InboxError):
    pass
