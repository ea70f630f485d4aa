"""homeassistant"""
