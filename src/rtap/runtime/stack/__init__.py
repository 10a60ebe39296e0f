"""The whole local stack in one process: ``rtap up`` starts it, ``rtap status`` reports on it."""
