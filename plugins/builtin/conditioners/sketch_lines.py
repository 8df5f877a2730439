"""What the ``sketch`` conditioner (sketch.py) does: whatever drawing a person hands over -> the
line map a model was trained on, ``(n, 1, H, W)`` float32 in [0, 1], 1 = stroke (docs/sketches.md).

It takes any PIL image (``toolkit.generation.images.open_image`` has checked its pixel
count): any mode (transparency is paper, as Gradio's sketchpad sends it), any size and
aspect ratio (letterboxed into the model's, never stretched), dark lines on light paper
or light on dark (the paper is the commonest colour), and a photo or rendering instead of
a drawing (detected, or forced by the request's ``sketch_from_photo``), whose edges
scikit-image's Canny detector traces into lines. Strokes end up as wide as the training
sketches draw them: drawn lines outside that range, filled areas and traced edges are
redrawn at a fixed width. A sketch with no lines left is no sketch: ``encode`` warns and
returns None, and the pipeline generates as without one.

The work happens on a canvas ``WORK_SCALE`` times the model's size, as the training
sketches are drawn supersampled, and is box-averaged down at the end.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2hsv
from skimage.morphology import skeletonize

WORK_SCALE = 4  # the canvas is up to this many times the model's size...
MAX_WORK_SIDE = 512  # ...and at most this many pixels on a side (large models work at 1x or 2x)
# Widths are in pixels of a 64x64 image and scale with the model's size; never under 1 model pixel.
REFERENCE_SIDE = 64
STROKE_WIDTHS = (1.0, 4.0)  # what the training sketches draw: drawn lines in this range are kept as they are
REDRAWN_WIDTH = 1.5  # lines thinned to a skeleton, outlines of filled areas and traced edges
# Colours within this of the paper's (any channel, 0-1) are paper: JPEG noise and paper grain.
PAPER_TOLERANCE = 0.08
DRAWING_PAPER_SHARE = 0.6  # a drawing leaves at least this share of the canvas paper; a photo does not
# Ink of several hues (saturated: channels spread by this much, 0-1) is a rendering's fills, not a pen's.
COLOURFUL_INK = 0.25
HUE_BINS = 12
COMPACT = 2.5  # a piece of ink with an area under this times its widest point squared is a blob, not a stroke
# Canny on photos: Gaussian sigma, and hysteresis thresholds as the height of a sharp step (0-1)
# that just passes; higher than for generated images, so that texture does not become lines.
EDGE_SIGMA = 0.5  # reference pixels
EDGE_STEPS = (0.1, 0.25)  # (low, high)


def sketch_lines(image: Image.Image, height: int, width: int, *, from_photo: bool = False) -> np.ndarray | None:
    """A PIL image of any mode and size -> ``(height, width)`` float32 stroke coverage in
    [0, 1] (1 = stroke), letterboxed; None when no line is found."""
    canvas = Canvas(height, width)
    content = fit_canvas(normalise_mode(image), height, width)
    rgb = _on_paper(content)  # (h, w, 3) in [0, 1]
    paper = np.median(rgb.reshape(-1, 3), axis=0)
    distance = np.abs(rgb - paper).max(axis=2)  # (h, w): how far each pixel is from the paper colour
    if (distance > PAPER_TOLERANCE).mean() < 1e-4:  # not a single stroke's worth of ink
        return None
    ink = canvas.ink(distance)
    if from_photo or (distance <= PAPER_TOLERANCE).mean() < DRAWING_PAPER_SHARE or _colourful(rgb[ink]):
        strokes = canvas.traced_lines(rgb)  # a photo, or a rendering in several colours
    else:
        strokes = canvas.drawn_lines(ink)
    lines = canvas.downsample(strokes)
    return lines if lines.max() >= 0.5 else None


def normalise_mode(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit "L", "RGB" or "RGBA" (anything with transparency)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):  # 16- and 32-bit integers, floats
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low = min(float(values.min()), 0.0)
        high = float(values.max())
        high = next((top for top in (1.0, 255.0, 65535.0) if high <= top), high)  # the range its type suggests
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return Image.fromarray(np.round(scaled * 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("L" if image.mode in ("1", "L") else "RGB")


def fit_canvas(image: Image.Image, height: int, width: int) -> Image.Image:
    """Resize to the largest size that fits the working canvas with the same aspect ratio
    (area-averaged when shrinking, so thin lines fade rather than vanish)."""
    size = Canvas(height, width).content_size(image.width, image.height)
    if image.size == size:
        return image
    return image.resize(size, Image.BOX if size[0] < image.width else Image.BILINEAR)


def _on_paper(image: Image.Image) -> np.ndarray:
    """L/RGB/RGBA -> ``(h, w, 3)`` float in [0, 1], transparent pixels turned into paper:
    white under dark strokes, black under light ones."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    if alpha.min() >= 1.0:
        return rgb
    opaque = alpha[..., 0] > 0.5
    ink = rgb[opaque].mean() if opaque.any() else 0.0
    paper = 1.0 if ink < 0.5 else 0.0
    return rgb * alpha + paper * (1 - alpha)


class Canvas:
    """The working canvas for a ``height x width`` model: ``scale`` times the model's size,
    with the input's content centred in it (letterboxed)."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.scale = max(1, min(WORK_SCALE, MAX_WORK_SIDE // max(height, width)))
        self.unit = self.scale * min(height, width) / REFERENCE_SIDE  # canvas pixels per reference pixel

    def content_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of an input of that size scaled to fit the canvas."""
        fit = min(self.scale * self.width / width, self.scale * self.height / height)
        return (max(1, min(round(width * fit), self.scale * self.width)),
                max(1, min(round(height * fit), self.scale * self.height)))

    def pixels(self, reference: float) -> float:
        """A width in reference pixels -> canvas pixels, at least one model pixel."""
        return max(reference * self.unit, float(self.scale))

    def ink(self, distance: np.ndarray) -> np.ndarray:
        """Pixels ``(h, w)`` bool at least half-way from the paper to the ink (the 95th
        percentile of what is not paper), without specks of dust or JPEG noise."""
        on_ink = distance[distance > PAPER_TOLERANCE]
        ink = distance >= max(0.5 * np.percentile(on_ink, 95), PAPER_TOLERANCE)
        return _drop_specks(ink, max(self.unit, self.scale / 2) ** 2)

    def drawn_lines(self, ink: np.ndarray) -> np.ndarray:
        """The ink of a drawing ``(h, w)`` bool -> strokes ``(h, w)`` bool: lines of the
        training sketches' widths as drawn, thinner or thicker ones redrawn along their
        centre, and filled areas (pieces without a hole, wider than any stroke somewhere,
        or blobs) as a line along their edge, half a pen's width inside it: where the pen's
        centre went if a thick pen filled a small shape in, on the edge of a filled shape."""
        solid = _solid(ink, self.pixels(STROKE_WIDTHS[1]) / 2 + self.unit / 2, self.pixels(STROKE_WIDTHS[0]))
        lines = ink & ~solid
        redrawn = self.pixels(REDRAWN_WIDTH)
        width = _stroke_width(lines) if lines.any() else redrawn  # the pen's
        if width > self.pixels(STROKE_WIDTHS[1]) + 1:  # +-1: the measure's resolution
            lines = self._redraw(_prune(skeletonize(lines), width))  # a thick line's skeleton reaches into its corners
        elif width < self.pixels(STROKE_WIDTHS[0]) - 1:
            lines = self._redraw(skeletonize(lines))
        depth = ndimage.distance_transform_edt(solid)
        inset = max(0.0, (width - redrawn) / 2)
        return lines | (solid & (depth > inset) & (depth <= inset + redrawn))

    def traced_lines(self, rgb: np.ndarray) -> np.ndarray:
        """A photo ``(h, w, 3)`` in [0, 1] -> its Canny edges, in any channel, as strokes
        ``(h, w)`` bool; edges closer than a stroke's width (the two sides of a thin drawn
        line) merge into one line along their middle."""
        from toolkit.eval.sketches import canny_edges  # the detector edge F1 measures generated images with

        grey = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        edges = np.zeros(rgb.shape[:2], bool)
        for channel in [rgb[..., 0]] if grey else [rgb[..., c] for c in range(3)]:
            edges |= canny_edges(channel, EDGE_SIGMA * self.unit, EDGE_STEPS)
        return self._redraw(skeletonize(self._redraw(edges)))

    def _redraw(self, skeleton: np.ndarray) -> np.ndarray:
        """Thin lines ``(h, w)`` bool -> lines ``REDRAWN_WIDTH`` wide."""
        if not skeleton.any():
            return skeleton
        return ndimage.distance_transform_edt(~skeleton) <= self.pixels(REDRAWN_WIDTH) / 2

    def downsample(self, strokes: np.ndarray) -> np.ndarray:
        """Strokes ``(h, w)`` bool on the content -> ``(height, width)`` float32 coverage,
        the content centred and the margins zero."""
        s = self.scale
        canvas = np.zeros((self.height * s, self.width * s), np.float32)
        top, left = (canvas.shape[0] - strokes.shape[0]) // 2, (canvas.shape[1] - strokes.shape[1]) // 2
        canvas[top:top + strokes.shape[0], left:left + strokes.shape[1]] = strokes
        return canvas.reshape(self.height, s, self.width, s).mean(axis=(1, 3))


def _colourful(ink: np.ndarray) -> bool:
    """Whether ink colours ``(k, 3)`` in [0, 1] hold two hues or more, each on a tenth of
    the saturated pixels at least: a rendering's fills rather than one pen."""
    saturated = ink[ink.max(axis=1) - ink.min(axis=1) > COLOURFUL_INK]
    if len(saturated) == 0:
        return False
    hue = rgb2hsv(saturated[None])[0, :, 0]  # (k,) in [0, 1)
    counts = np.bincount(np.floor(hue * HUE_BINS).astype(int) % HUE_BINS, minlength=HUE_BINS)
    return int((counts >= 0.1 * len(saturated)).sum()) >= 2


def _drop_specks(mask: np.ndarray, area: float) -> np.ndarray:
    """``mask`` without its connected pieces of fewer than ``area`` pixels (dust, JPEG noise)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= area
    keep[0] = False
    return keep[labels]


def _solid(ink: np.ndarray, depth: float, least: float) -> np.ndarray:
    """The pieces of ``ink`` ``(h, w)`` bool that enclose no paper and either reach deeper
    than ``depth`` pixels from their edge somewhere, or are blobs (an area under
    ``COMPACT`` times the square of their widest point) at least ``least`` pixels deep:
    filled areas, not strokes."""
    filled = ndimage.binary_fill_holes(ink)
    labels, count = ndimage.label(filled, structure=np.ones((3, 3)))
    index = np.arange(1, count + 1)
    holed = np.bincount(labels[filled & ~ink], minlength=count + 1)[1:] > 0
    deepest = np.asarray(ndimage.maximum(ndimage.distance_transform_edt(ink), labels, index)).reshape(-1)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    blob = (area < COMPACT * (2 * deepest) ** 2) & (deepest >= least)
    solid = np.concatenate([[False], ~holed & ((deepest > depth) | blob)])
    return solid[labels] & ink


def _prune(skeleton: np.ndarray, length: float) -> np.ndarray:
    """``skeleton`` ``(h, w)`` bool without the side branches up to ``length`` pixels long
    that end freely (spurs); the free ends of lines are cut back and grown again."""
    neighbours = np.ones((3, 3), int)
    neighbours[1, 1] = 0
    pruned = skeleton.copy()
    for _ in range(int(length)):
        ends = pruned & (ndimage.convolve(pruned.astype(int), neighbours, mode="constant") <= 1)
        if not ends.any():
            break
        pruned &= ~ends
    grown = pruned & (ndimage.convolve(pruned.astype(int), neighbours, mode="constant") <= 1)  # the ends left
    for _ in range(int(length)):
        grown |= ndimage.binary_dilation(grown, structure=np.ones((3, 3))) & skeleton & ~pruned
    return pruned | grown


def _stroke_width(lines: np.ndarray) -> float:
    """The median width of the strokes in ``lines`` ``(h, w)`` bool, in pixels: twice the
    distance from each skeleton pixel to the paper, less the skeleton pixel itself."""
    depth = ndimage.distance_transform_edt(lines)
    return float(np.median(2 * depth[skeletonize(lines)] - 1))
