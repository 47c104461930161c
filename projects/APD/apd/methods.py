"""Distillation methods by name: the terms and loss weights of each method's recipe.

A method is what a distillation config's ``model.distill_heads`` and ``model.loss_weights`` hold, per task:
``"sem_seg"`` (:class:`~apd.modeling.meta_arch.semantic_seg_distiller.SemanticSegDistiller`) or ``"rcnn"``
(:class:`~apd.modeling.meta_arch.rcnn_distiller.RCNNDistiller`). :func:`apply_method` turns any distillation
config of that task into the method's run: same student, teacher, data and schedule, only the terms and
their weights change (``tools/compare_methods.py`` compares methods this way). ``"student"`` is the student
trained alone (no teacher). A term the config already holds under the same name keeps the config's node
(its sizes, e.g. a narrow demo's APD adapters); the others get the registry's node.

The recipes are the committed configs' (docs/METHOD.md): logit KD w 10, T 1; CWD w 3, T 4; DIST w 1; PKD
w 6; APD + PA w 10 each with the teacher adapter's ``loss_adapt`` w 1 (its own Adam, ``adapter_optimizer``);
for R-CNN dense APD on the FPN levels, KD on the ROI scores (w 10), FPN imitation (w 1), PKD on p2–p5
(w 24) and the ROI-level APD + KD ablation (APD, PA and adapter w 1 each, KD w 10). A new method is one
:func:`register_method` call.
"""
import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from omegaconf import DictConfig, OmegaConf

from apd.config import lazy_target

__all__ = ["STUDENT", "Method", "apply_method", "config_task", "get_method", "method_names", "needs_second_optimizer",
           "register_method"]

STUDENT = "student"


@dataclass(frozen=True)
class Method:
    """One method of one task.

    Attributes:
        name: e.g. ``"apd_kd"``; unique per task.
        task: ``"sem_seg"`` or ``"rcnn"``.
        label: a table row's label, e.g. ``"+ APD + KD (official recipe)"``.
        terms: a function returning ``{term name: LazyCall node}`` (fresh nodes on every call); the node's
            ``${...student.*}`` interpolations resolve against the distiller. Each node's target is a
            :class:`~apd.modeling.distill.protocol.DistillationTerm`: its declared ``inputs`` must be the task's
            (:func:`register_method` checks), its ``second_optimizer_keys`` decide whether the run needs the
            config's second optimiser (APD's teacher adapter).
        loss_weights: ``{loss key: weight}`` of the recipe (the distiller refuses a key no term declares).
    """

    name: str
    task: str
    label: str
    terms: Callable[[], Dict[str, Any]] = field(default=dict)
    loss_weights: Mapping[str, float] = field(default_factory=dict)


# What a task's distiller hands its terms (apd.modeling.distill.protocol).
def _task_inputs(task: str):
    from apd.modeling.distill import protocol

    return {"sem_seg": {protocol.HEAD_OUTPUTS},
            "rcnn": {protocol.FPN_FEATURES, protocol.CLASS_MAPS, protocol.ROIS}}[task]


def _declared(cls, name: str):
    """A term class's declaration ``name`` (``inputs``, ``loss_keys``, ``second_optimizer_keys``) as a set, or
    None where the class leaves it to the instance (a property, e.g. inputs that depend on an argument)."""
    value = getattr(cls, name, ())
    return None if isinstance(value, property) else set(value)


def needs_second_optimizer(terms: Mapping[str, Any]) -> bool:
    """Whether any term node's class declares ``second_optimizer_keys`` (it trains parameters of its own)."""
    return any(_declared(lazy_target(node), "second_optimizer_keys") for node in terms.values())


_METHODS: Dict[tuple, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry.

    Raises:
        ValueError: its (task, name) is taken, or a term reads an input the task's distiller does not give
            (e.g. a segmentation term under ``"rcnn"``), or a loss weight names a key no term declares.
    """
    key = (method.task, method.name)
    if key in _METHODS:
        raise ValueError(f"Method '{method.name}' of task '{method.task}' is already registered")
    declared = set()
    for term, node in method.terms().items():
        cls = lazy_target(node)
        wrong = (_declared(cls, "inputs") or set()) - _task_inputs(method.task)
        if wrong:
            raise ValueError(f"Method '{method.name}': term '{term}' ({cls.__name__}) reads {sorted(wrong)}, which "
                             f"a {method.task} distiller does not give")
        keys = _declared(cls, "loss_keys")
        declared = None if keys is None or declared is None else declared | keys
    unknown = sorted(set(method.loss_weights) - declared) if declared is not None else []
    if unknown:
        raise ValueError(f"Method '{method.name}': loss weights {unknown} name no key its terms declare "
                         f"({sorted(declared)})")
    _METHODS[key] = method
    return method


def method_names(task: str) -> List[str]:
    """Registered method names of ``task``, in registration order."""
    return [name for (t, name) in _METHODS if t == task]


def get_method(name: str, task: str) -> Method:
    """The method; KeyError listing the task's methods when there is none of that name."""
    try:
        return _METHODS[(task, name)]
    except KeyError:
        raise KeyError(f"No method '{name}' for {task} configs; registered: {method_names(task)}") from None


def config_task(cfg: DictConfig) -> str:
    """``"rcnn"`` when the config's (student) model has ``roi_heads``, else ``"sem_seg"``."""
    model = cfg.model.student if "student" in cfg.model else cfg.model
    return "rcnn" if "roi_heads" in model else "sem_seg"


def _adapter_adam():
    import torch
    from detectron2.config import LazyCall as L

    from apd.solver.param_groups import teacher_adapter_params

    # configs/common/optim.py's AdapterAdam (docs/METHOD.md §3c)
    return L(torch.optim.Adam)(params=L(teacher_adapter_params)(model=None), lr=1e-5, betas=(0.9, 0.99),
                               weight_decay=0.0)


def apply_method(cfg: DictConfig, name: str) -> DictConfig:
    """Turn the distillation config ``cfg`` into method ``name``'s run, in place; returns ``cfg``.

    ``"student"``: ``model`` becomes ``model.student`` and ``adapter_optimizer`` None (``train.init_checkpoint``
    stays: an ImageNet backbone loads into a plain student as into a distiller's, and a file of only
    ``student.``-prefixed keys loads without the prefix, ``apd.checkpoint.AtomicCheckpointer``). Others: the method's
    terms and ``loss_weights`` replace the config's, ``adapter_optimizer`` is kept, added or removed as the
    terms' ``second_optimizer_keys`` need it, ``train.eval_teacher`` and everything else stay.

    Raises:
        ValueError: ``cfg`` is not a distillation config (no ``model.student``).
        KeyError: no method ``name`` for the config's task.
    """
    if "student" not in cfg.model or "teacher" not in cfg.model:
        raise ValueError("apply_method needs a distillation config (model.student and model.teacher); got a "
                         f"model of type {cfg.model.get('_target_')}")
    task = config_task(cfg)
    if name == STUDENT:
        student = cfg.model.student
        cfg.model = student
        cfg.adapter_optimizer = None
        return cfg
    method = get_method(name, task)
    old = cfg.model.distill_heads or {}
    heads = {}
    for term, node in method.terms().items():
        heads[term] = copy.deepcopy(old[term]) if term in old else node
    cfg.model.distill_heads = heads
    cfg.model.loss_weights = dict(method.loss_weights)
    if not needs_second_optimizer(heads):
        cfg.adapter_optimizer = None
    elif cfg.get("adapter_optimizer") is None:
        cfg.adapter_optimizer = _adapter_adam()
    return cfg


# ------------------------------------------------------------------------------------- the recipes
def _seg_terms(*names):
    def build():
        from detectron2.config import LazyCall as L

        from apd.modeling.distill import APDHead, CWDHead, DISTHead, LogitKDHead, PKDHead

        nodes = {
            "pkd": lambda: L(PKDHead)(student_channels="${...student.sem_seg_head.channels}",
                                      teacher_channels="${...teacher.sem_seg_head.channels}", scope="image"),
            "kd": lambda: L(LogitKDHead)(temperature=1.0),
            "cwd": lambda: L(CWDHead)(temperature=4.0),
            "dist": lambda: L(DISTHead)(beta=1.0, gamma=1.0, tau=1.0),
            "apd": lambda: L(APDHead)(
                student_channels="${...student.sem_seg_head.channels}",
                teacher_channels="${...teacher.sem_seg_head.channels}",
                num_classes="${...student.sem_seg_head.num_classes}",
                hidden_dim=512, embed_dim=512, tau=10.0, scope="image",
                ignore_value="${...student.sem_seg_head.ignore_value}"),
        }
        return {n: nodes[n]() for n in names}

    return build


def _rcnn_terms(*names):
    def build():
        from detectron2.config import LazyCall as L

        from apd.modeling.distill import FPNPKDHead
        from apd.modeling.distill.fpn_terms import FPN_LEVELS, FPNAPDHead, FPNImitationHead
        from apd.modeling.distill.roi_terms import ROIAPDHead, ROILogitKDHead

        nodes = {
            "pkd": lambda: L(FPNPKDHead)(student_channels="${...student.backbone.out_channels}",
                                         teacher_channels="${...teacher.backbone.out_channels}",
                                         levels=["p2", "p3", "p4", "p5"], scope="image"),
            "kd": lambda: L(ROILogitKDHead)(temperature=1.0),
            "apd": lambda: L(FPNAPDHead)(
                student_channels="${...student.backbone.out_channels}",
                teacher_channels="${...teacher.backbone.out_channels}",
                num_classes="${...student.roi_heads.num_classes}", levels=list(FPN_LEVELS)),
            "roi_apd": lambda: L(ROIAPDHead)(
                student_channels="${...student.roi_heads.box_predictor.input_shape.channels}",
                teacher_channels="${...teacher.roi_heads.box_predictor.input_shape.channels}",
                num_classes="${...student.roi_heads.num_classes}", include_background_proto=False),
            "fpn_mimic": lambda: L(FPNImitationHead)(
                student_channels="${...student.backbone.out_channels}",
                teacher_channels="${...teacher.backbone.out_channels}", levels=list(FPN_LEVELS), gt_only=False),
        }
        return {n: nodes[n]() for n in names}

    return build


_APD_W = {"loss_apd": 10.0, "loss_pa": 10.0, "loss_adapt": 1.0}
for _task in ("sem_seg", "rcnn"):
    register_method(Method(STUDENT, _task, "Student alone (no distillation)"))
register_method(Method("kd", "sem_seg", "+ logit KD (w 10, T 1)", _seg_terms("kd"), {"loss_kd": 10.0}))
register_method(Method("cwd", "sem_seg", "+ CWD (w 3, T 4)", _seg_terms("cwd"), {"loss_cwd": 3.0}))
register_method(Method("dist", "sem_seg", "+ DIST (w 1, τ 1)", _seg_terms("dist"), {"loss_dist": 1.0}))
register_method(Method("apd", "sem_seg", "+ APD + PA (w 10 each)", _seg_terms("apd"), _APD_W))
register_method(Method("apd_kd", "sem_seg", "+ APD + KD (official recipe)", _seg_terms("kd", "apd"),
                       {"loss_kd": 10.0, **_APD_W}))
register_method(Method("apd_cwd", "sem_seg", "+ APD + CWD", _seg_terms("apd", "cwd"), {**_APD_W, "loss_cwd": 3.0}))
register_method(Method("apd_dist", "sem_seg", "+ APD + DIST", _seg_terms("apd", "dist"),
                       {**_APD_W, "loss_dist": 1.0}))
register_method(Method("pkd", "sem_seg", "+ PKD (w 6)", _seg_terms("pkd"), {"loss_pkd": 6.0}))
register_method(Method("kd", "rcnn", "+ logit KD (ROI scores)", _rcnn_terms("kd"), {"loss_kd": 10.0}))
register_method(Method("fpn_mimic", "rcnn", "+ FPN imitation", _rcnn_terms("fpn_mimic"), {"loss_fpn_mimic": 1.0}))
register_method(Method("apd", "rcnn", "+ dense APD", _rcnn_terms("apd"), _APD_W))
register_method(Method("apd_kd", "rcnn", "+ dense APD + KD", _rcnn_terms("kd", "apd"), {"loss_kd": 10.0, **_APD_W}))
register_method(Method("pkd", "rcnn", "+ PKD on FPN p2–p5 (w 24)", _rcnn_terms("pkd"), {"loss_pkd": 24.0}))
register_method(Method("roi_apd_kd", "rcnn", "+ ROI-level APD + KD (ablation)", _rcnn_terms("kd", "roi_apd"),
                       {"loss_kd": 10.0, "loss_roi_apd": 1.0, "loss_roi_pa": 1.0, "loss_roi_adapt": 1.0}))
