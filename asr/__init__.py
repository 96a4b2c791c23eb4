"""Streaming speech recognition (voxkit.asr): Voxtral-Realtime-style delayed-streams recogniser."""
