"""Ablation grids: many training-notebook runs as resumable papermill batches, with one table and figures.

    python -m ablations run ablations/grids/quick.yaml --out ablations/results/quick
    python -m ablations status ablations/results/quick
    python -m ablations report ablations/results/quick

See docs/ablations.md.
"""
