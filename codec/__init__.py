"""VQ-FSQ neural audio codec (voxkit.codec): arrives with the codec issue (DESIGN.md §5)."""
