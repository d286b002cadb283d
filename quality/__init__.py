"""The quality report on a finished video: seams, colour and identity drift, lip sync, integrity (one streaming pass)."""
