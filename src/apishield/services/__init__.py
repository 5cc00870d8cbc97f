"""I/O services the adapters run for the decision core: fetches, stores, background sync."""
