# The `train` dict read by train_net.py (one comment per key).
train = dict(
    output_dir="./output",  # checkpoints, metrics.json, TensorBoard events, log.txt, config.yaml
    init_checkpoint="",  # student (or full model) weights to start from; "" = configs' own init
    max_iter=90000,  # total iterations (leaf configs derive it from epochs, with the arithmetic)
    amp=dict(enabled=False, dtype="float16"),  # torch.autocast (fp16 + GradScaler on CUDA, or bfloat16)
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=3),  # PeriodicCheckpointer; model_final.pth always kept
    eval_period=5000,  # run dataloader.test + evaluator every N iterations (and at the end)
    log_period=20,  # console / metrics.json / TensorBoard period
    device="auto",  # "auto" = cuda when available, else cpu
    seed=123,  # data order, augmentation and dropout are functions of (seed, iteration): exact resume
    eval_teacher=True,  # distillers: evaluate the frozen teacher once before step 0 and log its score
    cudnn_benchmark=False,  # torch.backends.cudnn.benchmark for training (fixed crop sizes: True helps)
    log_model=False,  # print the whole model at start-up
    compile=False,  # torch.compile the student's backbone + head and the distillation terms (True, or dict(backend=, mode=)); see apd.engine.distill_trainer.compile_model
)
