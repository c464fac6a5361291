"""ginie-server: event sources and the user-isolated WebSocket hub with its REST snapshot API."""

__version__ = "0.1.0"
