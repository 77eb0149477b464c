"""Facial recognition search bot under General Order 375.01."""
__version__ = "0.1.0"
