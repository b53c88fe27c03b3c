"""Face detectors behind one protocol (`base.Detector`): BlazeFace now; a new detector is one file here."""
