"""E3DSNN-S on ModelNet40: stem 24, stages [24, 48, 96, 160] × 1 block (3.27 M parameters, the authors'
``cls-E3DSNN-v1m1-0-S.py``); schedule, data and augmentation as E3DSNN-T (the authors use the same)."""
_base_ = ["./e3dsnn_t_modelnet40.py"]

embed_channels = 24
enc_channels = (24, 48, 96, 160)
model = dict(backbone=dict(embed_channels=embed_channels, enc_channels=enc_channels))
