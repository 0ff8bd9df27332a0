# Runtime shared by the detection configs: hooks (atomic iteration checkpoints, RNG state, progress),
# TensorBoard + local scalars, exact-resume loop pieces, seeds.
default_scope = "perception3d"
custom_imports = dict(imports=["perception3d.engine", "perception3d.models", "perception3d.datasets",
                               "perception3d.evaluation"], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    # every N iterations, written atomically (temp + rename); --resume picks the newest complete one
    checkpoint=dict(type="CheckpointHook", interval=500, by_epoch=False, max_keep_ckpts=3, save_last=True,
                    backend_args=dict(backend="atomic_local")),
    sampler_seed=dict(type="DistSamplerSeedHook"))
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=20)]

vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(window_size=20, by_epoch=True)
log_level = "INFO"
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict(backend="nccl"))
randomness = dict(seed=0, deterministic=False)
load_from = None
resume = False
