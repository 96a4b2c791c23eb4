"""Voice-cloning text-to-speech (DESIGN §6): lm backbone over codec frames, semantic head, flow-matching head.

The public entry point is :class:`voxkit.tts.api.Speaker` (also ``voxkit.Speaker``)."""
