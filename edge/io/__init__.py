"""Where frames come from (sources: cameras, files, streams, the demo) and where results go (sinks by URI)."""
