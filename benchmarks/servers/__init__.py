"""Bench servers, each in a child process: the plain-broadcast floor, the same per-user hub on
FastAPI/uvicorn and on python-socketio, and Ginie's own server (on SQLite; `ginie-db`: on a
database given by URL, alone or as a cluster node).

Each prints `ready PORT CONTROL_PORT` and then obeys a line protocol on the control port
(see `control.py`): publish a paced load or a burst, report CPU time and RSS.
"""
