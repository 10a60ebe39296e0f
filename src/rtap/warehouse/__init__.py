"""rtap.warehouse"""
