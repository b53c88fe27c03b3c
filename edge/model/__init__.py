"""ATPN: the network (torch, `atpn.py`), its contract (`spec.py`) and output decoding (`decode.py`).

Only `atpn.py`, `export.py` and `stats.py` import torch; everything a Jetson runs imports `spec`
and `decode`, which need numpy alone.
"""
