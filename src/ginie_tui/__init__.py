"""ginie-tui: the Textual console. Imports ginie_protocol, never ginie_server."""

__version__ = "0.1.0"
