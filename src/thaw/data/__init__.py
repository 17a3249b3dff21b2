"""Storage: the store, records, datasets and snapshots. Only `store.py` and `schema.py` touch SQL."""
