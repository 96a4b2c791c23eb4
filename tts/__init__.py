"""Voice-cloning text-to-speech (voxkit.tts): arrives with the TTS issue (DESIGN.md §6)."""
