"""Joining segment clips into one video: crossfades, colour hold, audio mux, export."""
