"""rtap.dashboard"""
