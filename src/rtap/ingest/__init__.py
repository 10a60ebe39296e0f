"""rtap.ingest"""
