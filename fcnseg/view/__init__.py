"""``fcnseg view``: a local web page to look at what a model does (:mod:`.server`).

Segment an uploaded image (overlay, legend, opacity, classes on and off, the class under the
pointer, each class's share, the mask to download); inspect a dataset split worst image first
(image, ground truth, prediction, error map; per-class IU and the confusion matrix); follow a
run's training curves. Needs the ``view`` extra (Flask).
"""

from .server import ViewState, create_app

__all__ = ["ViewState", "create_app"]
