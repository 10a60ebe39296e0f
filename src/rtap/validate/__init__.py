"""rtap.validate"""
