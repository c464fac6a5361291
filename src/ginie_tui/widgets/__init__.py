"""The console's panels, one module each; every panel renders from the store."""
