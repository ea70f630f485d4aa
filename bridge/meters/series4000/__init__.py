"""meters/series4000"""
