"""One frame's work and the loop around it: crop, aligner, tracker, the CPU and GPU loops, overlay, stats."""
