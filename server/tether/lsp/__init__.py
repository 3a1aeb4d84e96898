"""Language server: pygls adapter (server.py) over a pygls-free engine (engine.py)."""
