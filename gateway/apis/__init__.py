"""The API faces: each decodes its wire format into the engine contract and encodes
the contract's stream back. Dispatch, policy, the guard and metrics are shared and
live in ``gateway``; what several faces share of HTTP is in ``_common``."""
