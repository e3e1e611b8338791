"""PCKh head sizes for ground truth without head boxes (hand-made files, CVAT exports, COCO video exports).

poseval's head size is 0.6 x the diagonal of the annotated head box (`matching.head_size`). A file that has no
head box at all gets a documented stand-in, per person, in this order:
1. head_top and head_bottom annotated: the head box is taken as L high and 0.8 L wide (L = their distance), so
   the head size is 0.6 * sqrt(1 + 0.8^2) * L = 0.768 L;
2. else the person box (`bbox`, or the box around the joints): a head is about 1/7 of a standing person's height,
   so the head box is h/7 high and 0.8 h/7 wide: head size 0.768 * h / 7.
(Choice: the 0.8 aspect is about that of PoseTrack head boxes; 1/7 is the usual adult head-to-height ratio.)
The fallback is never used when the ground truth has head boxes: a file where some annotated persons have one and
others not is refused, since mixing two yardsticks would make the table mean neither.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from stdpose.data.records import Person, Video
from stdpose.errors import DataError
from stdpose.eval.matching import HEAD_SIZE_FACTOR, head_size
from stdpose.skeleton import SLOT

HEAD_MODES = ("box", "auto")  # box: head boxes required (poseval); auto: head boxes, else the fallback
_ASPECT = 0.8
_HEAD_PER_HEIGHT = 1.0 / 7.0
_FACTOR = HEAD_SIZE_FACTOR * float(np.hypot(1.0, _ASPECT))  # 0.768


def fallback_head_size(person: Person) -> tuple[float, str]:
    """(head size, source) for a person without a head box: 'head_top-head_bottom' or 'person box'; (0, 'none')
    when neither exists."""
    top, bottom = SLOT["head_top"], SLOT["head_bottom"]
    if person.keypoints[top, 2] > 0 and person.keypoints[bottom, 2] > 0:
        length = float(np.linalg.norm(person.keypoints[top, :2] - person.keypoints[bottom, :2]))
        if length > 0:
            return _FACTOR * length, "head_top-head_bottom"
    box = person.bbox if person.bbox is not None else person.box_from_keypoints()
    if box is not None and box[3] > 0:
        return _FACTOR * float(box[3]) * _HEAD_PER_HEIGHT, "person box"
    return 0.0, "none"


def scored_persons(videos: Sequence[Video], labeled_only: bool = False) -> list[tuple[str, Person]]:
    """(where, person) of every annotated person on the frames the mAP scores (`posetrack_map.evaluated_positions`:
    every frame with persons, as poseval; with `labeled_only` only the labeled ones)."""
    from stdpose.eval.posetrack_map import evaluated_positions

    out = []
    for v in videos:
        for i in evaluated_positions(v, labeled_only):
            f = v.frames[i]
            for k, p in enumerate(f.persons):
                if p.annotated.any():
                    out.append((f"{v.source or v.name} (frame {f.index} '{f.file_name}', person {k})", p))
    return out


def head_size_plan(gt: Sequence[Video], mode: str = "box", labeled_only: bool = False) -> tuple[bool, str]:
    """(use the fallback?, a description for the table header) for ground truth `gt` scored on the frames
    `labeled_only` selects (as `evaluate_posetrack`); DataError when it cannot be scored in `mode` (checked before
    any work is done)."""
    if mode not in HEAD_MODES:
        raise DataError(None, f"head size mode must be one of {', '.join(HEAD_MODES)}, got {mode!r}")
    persons = scored_persons(gt, labeled_only)
    with_box = [w for w, p in persons if p.bbox_head is not None]
    without = [w for w, p in persons if p.bbox_head is None]
    if not without:
        return False, "head size: head boxes (poseval)"
    if with_box:
        raise DataError(without[0], f"annotated person has no head box (bbox_head) while {len(with_box)} other(s) "
                                    "have one: the PCKh threshold needs one yardstick; add the head boxes")
    if mode == "box":
        raise DataError(without[0], "annotated person has no head box (bbox_head): the PCKh threshold needs it "
                                    "(this file has none; --head-size auto uses head_top/head_bottom or the "
                                    "person box instead)")
    sources = Counter(fallback_head_size(p)[1] for _, p in persons)
    if sources.get("none"):
        bad = next(w for w, p in persons if fallback_head_size(p)[1] == "none")
        raise DataError(bad, "annotated person has no head box, no head_top/head_bottom pair and no box: "
                             "no head size to score it with")
    parts = ", ".join(f"{src} for {n}" for src, n in sorted(sources.items()))
    return True, f"head size: NO head boxes - fallback from {parts} person(s) (docs/evaluation.md)"


def person_head_size(person: Person, use_fallback: bool) -> float:
    """The PCKh head size of a ground-truth person: its head box, or the fallback when the file has none."""
    if person.bbox_head is not None:
        return head_size(person.bbox_head)
    if use_fallback:
        return fallback_head_size(person)[0]
    raise ValueError("person without a head box")
