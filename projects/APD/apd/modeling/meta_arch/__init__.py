from .distiller import Distiller, TrainingOutputs
from .segmentor import Segmentor
from .semantic_seg_distiller import SemanticSegDistiller
from .rcnn_distiller import RCNNDistiller
from .teacher import TeacherWeightsError, load_teacher_weights

__all__ = ["Distiller", "TrainingOutputs", "Segmentor", "SemanticSegDistiller", "RCNNDistiller",
           "TeacherWeightsError", "load_teacher_weights"]
