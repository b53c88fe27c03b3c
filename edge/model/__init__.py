"""ATPN: the network (torch, `atpn.py`), its contract (`spec.py`) and the crops it sees (`crop.py`).

Only `atpn.py`, `export.py` and `stats.py` import torch; everything a Jetson runs imports `spec` and
`crop`, which need numpy and OpenCV alone.
"""
