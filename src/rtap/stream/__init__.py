"""rtap.stream"""
