"""longtake's orchestration layer: CLI, project config, run graph, cache, errors."""

__version__ = "0.1.0"
