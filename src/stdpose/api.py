"""The one-call Python API: `stdpose.propagate(video, labels, ...)`, and the run it shares with `stdpose propagate`.

    import stdpose
    out = stdpose.propagate("clip.mp4", "keyframes.xml", method="flow")      # -> stdpose.data.records.Video
    stdpose.data.formats.write_annotations(out, "clip_full.xml")             # back to CVAT (or any format)

`video` is a video file or frame folder path, an object with `__getitem__`/`__len__` giving BGR frames (a
`stdpose.data.video.FrameReader`), or None for the methods that need no frames (nearest, linear). `labels` is a
label file path (any format `stdpose.data.formats.read_annotations` reads) or a `Video`. The labels are aligned to
the video's frames here (`propagation.alignment`): a file that lists only its labeled frames, numbered by file
position, is placed by the frame numbers in its file names, so frame 7 of the file is frame 7 of the video.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdpose.data.records import Video
from stdpose.errors import ConfigError, DataError

FRAME_METHODS = ("stdpose", "flow", "auto")  # methods that need the video frames


@dataclass
class PropagationRun:
    """Everything one propagation produced: `result` (in the label file's own frames, what is written), `output`
    (the working video, aligned to the video frames), `ground_truth` (the labels --interval dropped, else None),
    `labeled` (the labels used), `summary` (the propagator's), `notes` (what was done and why), `frames`,
    `alignment` and the head-size description `head_note` of a scored run."""

    result: Video
    output: Video
    labeled: list[int]
    ground_truth: Video | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    frames: Any = None
    alignment: Any = None
    head_note: str = ""
    propagator: Any = None


def load_labels(labels: str | Path | Video, node_map: Any = None, video_name: str | None = None,
                skipped: Counter | None = None) -> Video:
    """The one video of a label file (or the named one of several), or `labels` itself when it is a Video.

    `skipped` (optional) accumulates the readers' counted skips (e.g. "degenerate_bbox")."""
    if isinstance(labels, Video):
        return labels
    from stdpose.data.formats import read_annotations

    videos = read_annotations(labels, skipped, node_map=node_map)
    if not videos:
        raise DataError(labels, "holds no video")
    if video_name is None:
        if len(videos) > 1:
            names = ", ".join(v.name for v in videos[:8])
            raise ConfigError(f"{labels} holds {len(videos)} videos ({names}{' ...' if len(videos) > 8 else ''}); "
                              "choose one with --video-name / video_name=")
        return videos[0]
    for v in videos:
        if video_name in (v.name, str(v.vid_id)):
            return v
    raise ConfigError(f"no video named {video_name!r} in {labels} (it has: {', '.join(v.name for v in videos[:8])})")


def _open(video: Any) -> Any:
    if video is None or hasattr(video, "__getitem__") and not isinstance(video, str | Path):
        return video
    from stdpose.data.video import open_frames

    return open_frames(video)


def build_propagator(method: str, checkpoint: str | Path | None = None, *, one_sided: str = "half",
                     extend: int = 0, detections: Any = None, device: str = "cpu", batch_size: int = 32,
                     progress: bool = False) -> Any:
    """The propagator for `method` (STDPose needs a checkpoint; the others need none)."""
    if method == "stdpose":
        if not checkpoint:
            raise ConfigError("method stdpose needs a checkpoint (a trained propagation model); or choose "
                              "method flow|linear|nearest")
        from stdpose.propagation.learned import STDPosePropagator

        return STDPosePropagator.from_checkpoint(checkpoint, device=device, batch_size=batch_size,
                                                 progress=progress, one_sided=one_sided, detections=detections,
                                                 extend=extend)
    if checkpoint:
        raise ConfigError(f"a checkpoint is only used by method stdpose (got method {method})")
    from stdpose.propagation.methods import get_propagator

    return get_propagator(method, one_sided=one_sided, detections=detections, progress=progress, extend=extend)


def _no_label_hint(video: Video) -> str:
    with_persons = sum(1 for f in video.frames if f.persons)
    if with_persons:
        return (f"; {with_persons} frame(s) hold persons but none is marked labeled (PoseTrack18: set "
                "\"is_labeled\": true on the labeled images)")
    return "; the file holds no person at all"


def run_propagation(
    video: Any,
    labels: str | Path | Video,
    method: str = "stdpose",
    checkpoint: str | Path | None = None,
    interval: int | None = None,
    *,
    protocol: str = "posewarper",
    extend: int | None = None,
    one_sided: str = "half",
    detections: Any = None,
    node_map: Any = None,
    video_name: str | None = None,
    evaluate: bool = False,
    head_size_mode: str = "auto",
    device: str = "cpu",
    batch_size: int = 32,
    progress: bool = False,
    propagator: Any = None,
) -> PropagationRun:
    """Align the labels to the video, (with `interval`) keep every T-th label, propagate; see `propagate`.

    `evaluate=True` checks, before any propagation, that the dropped labels can be scored (`interval` given,
    something left to score, head sizes available per `head_size_mode`), and raises otherwise.
    `detections`: a COCO results path or {frame index: boxes}. `propagator` replaces the one `method` builds."""
    from stdpose.propagation.alignment import AlignedFrames, align_labels, label_frame_count, reference_size
    from stdpose.propagation.protocol import scored_reach, sparsify

    if evaluate and interval is None:
        raise ConfigError("evaluation needs an interval T: the labels it drops are the ground truth it scores")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 2):
        raise ConfigError(f"interval must be at least 2 (one unlabeled frame between kept labels), got {interval}")
    if extend is not None and (isinstance(extend, bool) or not isinstance(extend, int) or extend < 0):
        raise ConfigError(f"extend must be a whole number of frames >= 0, got {extend!r}")

    from stdpose.data.bounds import check_labels_inside, clip_to_image

    skipped: Counter = Counter()
    source_labels = load_labels(labels, node_map, video_name, skipped)
    reader = _open(video)
    notes: list[str] = []
    if skipped.get("degenerate_bbox"):
        notes.append(f"{skipped['degenerate_bbox']} labeled box(es) with zero or negative size were not used "
                     "(the joints' own box stands in)")
    size = None
    alignment, frames = None, None
    if reader is not None:
        names = [f.name for f in reader.files] if hasattr(reader, "files") else None
        alignment = align_labels(source_labels, len(reader), names)
        notes.extend(alignment.notes)
        work = alignment.video
        size, size_from = reference_size(work, lambda i: reader[alignment.video_index[i]])
        frames = AlignedFrames(reader, alignment.video_index, size)
        frames.size_from = size_from
        check_labels_inside(work, size, source_labels.source or labels)
    else:
        stated = label_frame_count(source_labels)
        if stated is not None and stated > source_labels.num_frames:
            alignment = align_labels(source_labels, stated)
            notes.extend(alignment.notes)
            notes.append(f"no video given: the video length is taken from the labels ({stated} frames)")
            work = alignment.video
        else:
            work = source_labels
    labeled = work.labeled_indices()
    if not labeled:
        raise DataError(source_labels.source or source_labels.name,
                        f"video {work.name} has no labeled frame (within the video) to propagate from"
                        + _no_label_hint(work))

    gt, head_note, source = None, "", work
    if interval is not None:
        source, gt, labeled = sparsify(work, interval, protocol)
        scored = sum(1 for f in gt.frames if f.is_labeled)
        notes.append(f"interval {interval} ({protocol}): kept the labels of frames {labeled}, dropped "
                     f"{scored} labeled frame(s) (the ground truth of the evaluation)")
        if interval >= work.num_frames:
            notes.append(f"the interval ({interval}) is longer than the video ({work.num_frames} frames): "
                         "every other frame is propagated from the kept label(s) alone")
        if not labeled:
            raise DataError(source_labels.source, "no label left after the interval (the labeled run is empty)")
        lost = sorted(set(work.labeled_indices()) - set(labeled) - set(gt.labeled_indices()))
        if lost:  # human labels are never replaced by propagated poses
            raise ConfigError(f"--interval {interval} would drop the human labels of frame(s) {lost[:8]} without "
                              f"scoring them (the labels are not one dense run: labeled frames "
                              f"{work.labeled_indices()[:8]}); they are already sparse: propagate them without "
                              "--interval")
        if extend is None:
            extend = scored_reach(labeled, gt.labeled_indices())
            if extend:
                notes.append(f"the {protocol} protocol scores frames up to {extend} frame(s) past the first/last "
                             "kept label: tracks are extended that far (--extend to change)")
        if evaluate:
            from stdpose.eval.head_size import head_size_plan

            if not any(f.is_labeled and f.persons for f in gt.frames):
                raise DataError(source_labels.source, f"nothing to score: at interval {interval} ({protocol}) no "
                                                      "labeled frame with persons is dropped")
            _, head_note = head_size_plan([gt], head_size_mode)
    extend = 0 if extend is None else extend

    if isinstance(detections, str | Path):
        from stdpose.data.formats import read_detections
        from stdpose.propagation.tracks import detections_for_video

        dets = read_detections(detections)
        detections = {i: d for i, d in detections_for_video(work, dets).items() if d}
        ids = {f.image_id for f in work.frames}
        unmatched = sum(len(d) for i, d in dets.items() if i not in ids)
        notes.append(f"detections: {sum(len(d) for d in detections.values())} boxes on {len(detections)} frame(s)"
                     + (f"; {unmatched} box(es) with an image_id of no frame of this video ignored"
                        if unmatched else ""))
    if propagator is None:
        propagator = build_propagator(method, checkpoint, one_sided=one_sided, extend=extend, detections=detections,
                                      device=device, batch_size=batch_size, progress=progress)
    else:  # a propagator built once for many videos: this video's reach past its labels
        propagator.extend = extend
    if frames is None and (method in FRAME_METHODS or getattr(propagator, "needs_frames", False)):
        raise ConfigError(f"method {method} needs the video frames (a video file or frame folder)")
    out = propagator.propagate(source, frames, labeled)
    if size is not None:
        clipped = clip_to_image(out, size)
        if clipped:
            notes.append(f"{clipped['joints_clipped']} propagated joint(s) and {clipped['boxes_clipped']} box(es) "
                         f"outside the {size[0]}x{size[1]} frame were clipped onto it; {clipped['boxes_dropped']} "
                         "box(es) entirely outside were dropped")
    from stdpose.propagation.alignment import restore_alignment

    result = restore_alignment(out, alignment) if alignment is not None else out
    summary = getattr(propagator, "last_summary", {}) or out.extra.get("propagation", {})
    return PropagationRun(result=result, output=out, labeled=list(labeled), ground_truth=gt, summary=summary,
                          notes=notes, frames=frames, alignment=alignment, head_note=head_note,
                          propagator=propagator)


def propagate(video: Any, labels: str | Path | Video, method: str = "stdpose",
              checkpoint: str | Path | None = None, interval: int | None = None, **options: Any) -> Video:
    """Propagate the labels of `labels` to the frames of `video`; returns a new Video in the label file's frames.

    method: "stdpose" (needs `checkpoint`), "auto", "flow", "linear", "nearest" (or any method
    `stdpose.propagation.methods.get_propagator` knows). interval: keep only every T-th label (the sparse-label
    protocol; `options["protocol"]`) to measure a method. Other options: extend (frames past a track's first/last
    label, default 0), one_sided, detections, node_map (CVAT skeletons), video_name, device, batch_size.
    The labels are aligned to the video frames by the frame numbers in their file names (see the module doc).
    """
    return run_propagation(video, labels, method, checkpoint, interval, **options).result


def plan_notes(summary: dict[str, Any], one_sided: str) -> list[str]:
    """Human-readable notes on what the track plan did (bounded ends, one-sided tracks, matches, refusals), from
    a propagator's `last_summary`; `stdpose propagate` prints them."""
    notes = []
    before, after = summary.get("left_out_before_first", 0), summary.get("left_out_after_last", 0)
    if before or after:
        notes.append(f"bounded propagation: {before} (track, frame) pair(s) before a track's first label and "
                     f"{after} after its last label left without a pose (--extend N fills up to N frames past a "
                     f"label; now {summary.get('extend', 0)})")
    if summary.get("extended_frames"):
        notes.append(f"--extend {summary.get('extend')}: {summary['extended_frames']} (track, frame) pair(s) filled "
                     "past a track's first/last label, with scores falling with the distance")
    if summary.get("one_sided_left") or summary.get("one_sided_right"):
        notes.append(f"{summary.get('one_sided_left', 0) + summary.get('one_sided_right', 0)} track(s) appear in "
                     f"only one of two consecutive labeled frames: propagated per --one-sided {one_sided}; "
                     f"{summary.get('one_sided_frames_skipped', 0)} (track, frame) pair(s) left without a pose")
    if summary.get("assigned_track_ids"):
        notes.append(f"{summary['assigned_track_ids']} labeled person(s) had no (or a duplicate) track id: "
                     f"{summary.get('matched_untracked', 0)} continued a person of the previous label by pose "
                     f"similarity, {summary.get('refused_matches', 0)} candidate match(es) refused, the rest "
                     "started new tracks")
    for m in summary.get("matches", []):
        notes.append(f"match: frame {m['from_frame']} -> {m['to_frame']} track {m['track_id']} cost {m['cost']:.3f} "
                     f"({m['motion']})")
    notes.extend(f"refused: {r}" for r in summary.get("refusals", []))
    return notes
