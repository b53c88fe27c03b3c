"""The camera loop: sources, detector, crop, aligner, tracker, loop, render, stats."""
