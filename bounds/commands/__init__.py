"""Sub-commands of ``pqbound``: one module each, exposing ``register(subparsers)``."""
