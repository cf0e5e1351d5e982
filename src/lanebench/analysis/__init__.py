"""Figures from figures, pure: metrics, noise, roofline, the speculative model, views."""
