"""One frame's work and the loop around it: aligner, tracker, the CPU and GPU loops, overlay, stats, calibration crops."""
