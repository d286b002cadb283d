"""Audio ingest, voice-activity detection and the segment planner."""
