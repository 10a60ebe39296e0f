"""rtap.bench"""
