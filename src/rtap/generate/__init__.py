"""rtap.generate"""
