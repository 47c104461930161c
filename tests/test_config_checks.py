import pytest
from detectron2.config import LazyConfig

from apd.config import ConfigKeyError, check_config, check_overrides


def _cfg():
    return LazyConfig.load("configs/common/optim.py")


def test_unknown_override_key_names_the_key():
    cfg = _cfg()
    with pytest.raises(ConfigKeyError, match="SGD.momentun"):
        check_overrides(cfg, ["SGD.momentun=0.5"])
    with pytest.raises(ConfigKeyError, match="SGD.params.base_lrr"):
        check_overrides(cfg, ["SGD.params.base_lrr=0.5"])


def test_existing_keys_and_accepted_kwargs_pass():
    cfg = _cfg()
    check_overrides(cfg, ["SGD.momentum=0.5", "SGD.nesterov=True", "SGD.params.head_lr_multiplier=1"])


def test_unknown_train_key_is_rejected():
    cfg = LazyConfig.load("configs/common/train.py")
    cfg.train.max_itr = 5
    for k in ("model", "dataloader", "optimizer", "lr_multiplier"):
        cfg[k] = {}
    with pytest.raises(ConfigKeyError, match="max_itr"):
        check_config(cfg)


def test_overrides_of_keys_a_subclass_passes_on_to_its_base_stay_checked():
    """RCNNDistiller and the APD heads list every keyword their base takes: those keys are known (a typo is
    refused, naming the valid keys) and type-checked from the signature alone, and a keyword the class sets
    itself (the adapter kind) is not a key."""
    from apd.config import ConfigValueError

    cfg = LazyConfig.load("configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py")
    # save_teacher is set nowhere in the config: only the base's signature knows it
    check_overrides(cfg, ["model.save_teacher=True", "model.class_map_from=boxes", "model.distill_heads.apd.tau=5.0"])
    with pytest.raises(ConfigKeyError, match="warmup_iter'.*'warmup_iters'"):
        check_overrides(cfg, ["model.warmup_iter=10"])
    with pytest.raises(ConfigKeyError, match="hidden_dims'.*'hidden_dim'"):
        check_overrides(cfg, ["model.distill_heads.apd.hidden_dims=64"])
    with pytest.raises(ConfigValueError, match="model.save_teacher"):
        check_overrides(cfg, ["model.save_teacher=3"])
    # the dense head fixes its adapter kind itself: overriding it is an unknown key, caught before the build
    with pytest.raises(ConfigKeyError, match="apd.adapter"):
        check_overrides(cfg, ["model.distill_heads.apd.adapter=mlp"])
    roi = LazyConfig.load("configs/COCO-InstanceSegmentation/roiapd_mask_rcnn_R34_to_R18_FPN_demo.py")
    with pytest.raises(ConfigKeyError, match="adapter"):
        check_overrides(roi, ["model.distill_heads.roi_apd.adapter=conv"])


def test_distillers_and_terms_list_every_keyword():
    """The override checks read ``inspect.signature`` alone: no distiller or term forwards ``**kwargs``."""
    import inspect

    import apd.modeling.distill as distill
    from apd.modeling.meta_arch import RCNNDistiller, SemanticSegDistiller

    terms = [getattr(distill, n) for n in distill.__all__ if inspect.isclass(getattr(distill, n))
             and issubclass(getattr(distill, n), distill.DistillationTerm) and getattr(distill, n) is not distill.DistillationTerm]
    assert {"APDHead", "FPNAPDHead", "ROIAPDHead", "ROILogitKDHead", "FitNetHead", "PKDHead", "FPNPKDHead"} <= {
        t.__name__ for t in terms}
    for cls in (RCNNDistiller, SemanticSegDistiller, *terms):
        kinds = [p.kind for p in inspect.signature(cls).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD not in kinds, cls.__name__


def test_unparsable_override_with_non_ascii_or_spaces_says_to_quote_it():
    from apd.config import ConfigValueError, load_config

    config = "configs/demo/pspnet_r18_demo.py"
    for value in ("résumé", "a b]"):
        with pytest.raises(ConfigValueError) as refused:
            load_config(config, [f"train.output_dir={value}"])
        assert str(refused.value).endswith(
            f"Quote a value with spaces, non-ASCII or special characters for the override grammar, inside the "
            f"shell's quotes: \"train.output_dir='{value}'\"")
        assert load_config(config, [f"train.output_dir='{value}'"]).train.output_dir == value  # the advice works


# --------------------------------------------------------------- the README's shrink for a first try
def _readme_block(after):
    """The overrides of the first ```bash block after the line containing ``after`` in README.md (the
    command's words that contain '=', without the $DATA variable)."""
    import os
    import re
    import shlex

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")) as f:
        text = f.read()
    block = re.search(r"```bash\n(.*?)```", text[text.index(after):], re.S).group(1)
    return [w for w in shlex.split(block.replace("\\\n", " ")) if "=" in w and not w.startswith("$")]


@pytest.mark.parametrize("path", ["configs/cityscapes/pspnet_r18.py", "configs/apd_pspnet_r18.py",
                                  "configs/ade20k/pspnet_r18.py", "configs/ade20k/cwd_pspnet_r18.py",
                                  "configs/pascal_context/apd_deeplab_r18.py", "configs/own/pspnet_r18.py",
                                  "configs/own/apd_pspnet_r18.py"])
def test_readme_shrink_overrides_work_alike_on_plain_and_distillation_configs(path):
    from omegaconf import OmegaConf

    from apd.config import load_config

    overrides = _readme_block("## A first try on a CPU or a small GPU")
    assert "model.sliding_window=null" in overrides and "train.eval_teacher=false" in overrides
    recipe = load_config(path)
    student = "model.student" if "student" in recipe.model else "model"
    assert OmegaConf.select(recipe, f"{student}.sliding_window") is not None  # the recipe slides windows
    cfg = load_config(path, overrides)
    assert OmegaConf.select(cfg, f"{student}.sliding_window") is None
    assert list(cfg.dataloader.train.mapper.augmentations.crop_size) == [256, 256]
    assert cfg.dataloader.train.total_batch_size == 2 and cfg.dataloader.train.num_workers == 0
    assert cfg.train.max_iter == 1000 and cfg.train.eval_teacher is False
    if student == "model.student":  # the teacher is untouched
        assert OmegaConf.to_yaml(cfg.model.teacher) == OmegaConf.to_yaml(recipe.model.teacher)


def test_sliding_window_keys_reach_a_distillers_student_only():
    from apd.config import student_overrides

    distiller = LazyConfig.load("configs/apd_pspnet_r18.py")
    plain = LazyConfig.load("configs/cityscapes/pspnet_r18.py")
    items = ["model.sliding_window.flip=false", "model.sliding_windows=1", "model.teacher_weights=x", "train.seed=1"]
    assert student_overrides(distiller, items) == ["model.student.sliding_window.flip=false", *items[1:]]
    assert student_overrides(plain, items) == items


def test_train_keys_and_their_types_come_from_configs_common_train():
    """The valid ``train.*`` keys are those of configs/common/train.py, and a key's type is its default's
    there (where the config holds None) widened by the trainer's signature (``train.compile``)."""
    from omegaconf import OmegaConf

    from apd.config import ConfigValueError

    defaults = LazyConfig.load("configs/common/train.py").train
    cfg = LazyConfig.load("configs/demo/pspnet_r18_demo.py")
    cfg.train = OmegaConf.merge(defaults, {})
    check_config(cfg)  # every default key is valid
    cfg.train.log_every = 5
    with pytest.raises(ConfigKeyError) as refused:
        check_config(cfg)
    assert f"valid train keys: {sorted(defaults.keys())}" in str(refused.value)
    del cfg.train["log_every"]
    cfg.train.checkpointer.max_to_keep = None  # typed by configs/common/train.py's 3, and None stays allowed
    check_overrides(cfg, ["train.checkpointer.max_to_keep=4", "train.checkpointer.max_to_keep=null",
                          "train.compile={mode:max-autotune}", "train.compile=true"])
    for override, message in (("train.checkpointer.max_to_keep=abc", "expected an integer or null, got 'abc'"),
                              ("train.max_iter=2.5", "expected an integer, got 2.5"),
                              ("train.seed=1.5", "expected an integer or null, got 1.5"),  # Optional[int]
                              ("train.compile=[1]", "expected true or false or a mapping or null, got [1]")):
        with pytest.raises(ConfigValueError, match=override.replace("[", r"\[")) as refused:
            check_overrides(cfg, [override])
        assert message in str(refused.value)
