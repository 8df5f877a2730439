"""NudeNet's pretrained nudity detector as a toolkit safety classifier.

Install this package and safety policies can name ``classifier: nudenet``; the default
policy's ``explicit-nudity`` category uses it (and records it as skipped without it):

    pip install -e plugins/packages/toolkit-nudenet
    toolkit generate --model NAME --post safety

The detector (``nudenet.NudeDetector``, a YOLO-style ONNX network run by onnxruntime, its
weights ``320n.onnx`` inside the nudenet wheel) finds body parts in an image and labels
each, exposed or covered. The score of a concept (a label) for an image is the highest
confidence of any detection with that label, 0 when there is none (NudeNet reports
detections from 0.2 up).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from toolkit import hookimpl
from toolkit.components import PostContext, SafetyClassifier

if TYPE_CHECKING:  # imported where images are scored: toolkit loads this plugin at every start
    import torch

# Every label the detector gives (nudenet 3.4), the concepts a policy may name.
LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
# The labels that make an image explicit: what a policy's nudity category lists.
EXPOSED_NUDITY = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED",
                  "ANUS_EXPOSED")


class NudeNet(SafetyClassifier):
    """NudeNet's exposed/covered body-part detector (ONNX, pretrained)."""

    name = "nudenet"
    concepts = LABELS

    def __init__(self) -> None:
        self._detector: Any = None
        self._lock = threading.Lock()

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import nudenet  # noqa: F401
        except ImportError as error:
            return f"the nudenet package is not importable ({error}); pip install 'nudenet>=3.4,<3.5'"
        return None

    def detector(self) -> Any:
        """The ONNX detector, loaded on first use (about a second) and kept."""
        with self._lock:
            if self._detector is None:
                from nudenet import NudeDetector

                self._detector = NudeDetector()
            return self._detector

    def detect(self, images: torch.Tensor) -> list[list[dict[str, Any]]]:
        """images ``(B, 3, H, W)`` in [-1, 1] -> NudeNet's detections per image:
        ``{"class": label, "score": float, "box": [x, y, w, h]}``."""
        import numpy as np
        import torch

        pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        # NudeNet reads files with OpenCV: hand it what cv2.imread would give, (H, W, 3) BGR.
        bgr = pixels.permute(0, 2, 3, 1).flip(-1).numpy()  # (B, H, W, 3)
        detector = self.detector()
        return [detector.detect(np.ascontiguousarray(image)) for image in bgr]

    def score(self, images: torch.Tensor, concepts: list[str], ctx: PostContext) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, C)``: per label, the best detection's confidence."""
        import torch

        scores = torch.zeros(images.shape[0], len(concepts))
        for i, found in enumerate(self.detect(images)):
            for detection in found:
                if detection["class"] in concepts:
                    j = concepts.index(detection["class"])
                    scores[i, j] = max(float(scores[i, j]), float(detection["score"]))
        return scores


@hookimpl
def register_safety_classifiers(register):
    register(NudeNet)
