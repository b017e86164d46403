"""The recipe that trains the base bundled in ``mm_browserfft/assets/base`` (not imported by the package).

Run it with ``python -m tools.pretrain`` from the repository root; see docs/model-card.md.
"""
