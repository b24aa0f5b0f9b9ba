"""Generators for everything derived from circle_bridge/_protocol.py."""
