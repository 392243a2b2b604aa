"""Low-level operations shared by the models: box ops (`box_ops`) and multi-scale deformable
attention in plain PyTorch (`msda`)."""
