"""rtap.broker"""
