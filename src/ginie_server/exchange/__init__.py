"""Exchanges behind one interface: paper (the default, seeded) and Binance."""
