# Toy config for the engine tests (tests/test_engine.py, tests/test_tools_train.py).
default_scope = "perception3d"
custom_imports = dict(imports=["perception3d.engine", "_engine_toy"], allow_failed_imports=False)
model = dict(type="ToyPointsModel", hidden=16)
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type="ResumableSampler", shuffle=True),
    collate_fn=dict(type="det3d_collate"),
    dataset=dict(type="SeededDataset", dataset=dict(type="ToyPointsDataset", n=16, bad_index=5)))
train_cfg = dict(type="ExactEpochBasedTrainLoop", max_epochs=3, val_interval=100)
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.01, weight_decay=0.01))
param_scheduler = [dict(type="CosineAnnealingLR", T_max=24, by_epoch=False, eta_min=1e-4)]
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=1),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=3, by_epoch=False, max_keep_ckpts=2,
                    backend_args=dict(backend="atomic_local")),
    sampler_seed=dict(type="DistSamplerSeedHook"))
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=4)]
log_processor = dict(window_size=1)
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork"), dist_cfg=dict(backend="gloo"))
log_level = "WARNING"
