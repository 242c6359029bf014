"""The bi-temporal fact graph with conflict detection (see ``service`` and ``rules``)."""
