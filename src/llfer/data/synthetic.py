"""Embedded synthetic FER set: procedurally drawn faces whose expressions are built from FACS action units.

The set is a stand-in for FER2013 when no real data is at hand (tests, CI, a
first ``dvc repro``): 48 x 48 grayscale faces in the seven FER2013 classes and
order (:data:`~llfer.data.store.CLASSES_FER2013`), many identities, subject-
disjoint train/val/test splits, and no download.  It is meant to show the
phenomenon the project studies: a classifier trained on clean images loses
much of its accuracy on darkened copies (``PIL.ImageEnhance.Brightness`` with
factor 0.1), and an enhancer such as histogram equalisation wins part of it back
(``benchmarks/synthetic_gap.py`` measures this).

How an image is made
--------------------
1. **Identity** (one per subject id, drawn from ``default_rng([seed, 1, subject])``):
   face width, height and jaw taper; skin, hair, brow, lip, iris, sclera and
   clothing tones; hair style (short, long, fringe, cropped); eye spacing, size,
   openness and canthal tilt; brow height, arch, thickness and length; nose
   length and width; mouth height, width and lip thickness; nasolabial "age"
   lines; optional glasses and stubble; a *resting face* (a few action units
   weakly on, e.g. a slightly sad mouth) and an expressivity factor.
2. **Expression** (per image, ``default_rng([seed, 0, image_index])``): the
   class's FACS prototype below, one global intensity ``U(0.45, 1.0)`` scaled by
   the identity's expressivity and jittered per AU, optional extra AUs, weak
   random distractor AUs, plus the identity's resting AUs.  Low intensities,
   resting faces and distractors make neighbouring classes overlap
   (neutral/sad/angry, fear/surprise, disgust/angry) as they do in real data.
3. **Pose and scene** (per image): position, scale (face width about 26-39 px
   at 48 px), in-plane rotation up to 10 degrees, gaze, a textured background (low-
   frequency blotches, stripes, grain), a linear lighting gradient, side
   lighting and 3-D falloff on the face, exposure, Gaussian blur and noise.
4. **Rendering**: every shape is a polygon (faces, eyes, lips) or a variable-
   width stroke (brows, lids, wrinkles) drawn in float ("F" mode) with
   ``PIL.ImageDraw`` at ``render_scale`` times the output size, then area-
   averaged down (``Image.reduce``), which anti-aliases all edges.

Action units and how they are drawn
-----------------------------------
Coordinates are face-normalised: ``u`` runs across the face (-1..1, face
half-width), ``v`` down it (-1 forehead top .. 1 chin, face half-height); ``x``
is an AU's intensity in [0, 1].

=====  ======================  =============================================================
AU     FACS name               drawing change
=====  ======================  =============================================================
1      inner brow raiser       inner brow ends up (-0.15x), arch up a little; central forehead
                               wrinkles
2      outer brow raiser       outer brow ends up (-0.15x), brow middle up (-0.07x); forehead
                               wrinkles widen to the sides
4      brow lowerer            brows down (body +0.08x; inner end +0.09x, damped by AU1 so 1+4
                               gives the oblique "sad" brow), drawn together (0.06x), 15%
                               thicker; vertical glabella lines
5      upper lid raiser        upper lid opening x(1 + 1.1x): sclera shows above the iris
6      cheek raiser            lower lid up (opening x(1 - 0.5x)), upper lid x(1 - 0.25x),
                               raised cheek highlight, crow's feet, infra-orbital furrow,
                               nasolabial fold
7      lid tightener           upper lid x(1 - 0.45x), lower lid x(1 - 0.5x): narrowed eyes
9      nose wrinkler           wrinkles across the nose bridge, nostrils up (-0.045x) and 20%
                               wider, inner brows pulled down and in, slight squint, fold
10     upper lip raiser        upper lip centre up (-0.06x), mouth parts, upper teeth show,
                               nasolabial fold
12     lip corner puller       corners up (-0.15x) and out (+0.07x), lips thinner, cheeks up,
                               deep nasolabial fold
15     lip corner depressor    corners down (+0.12x) and slightly in
16     lower lip depressor     lower lip centre down (+0.06x), mouth parts, lower teeth show
20     lip stretcher           corners out (+0.12x) and slightly down; lips flatten and thin
23     lip tightener           mouth narrower (-0.08x), lips thinner (x(1 - 0.55x)), opening
                               halved at full intensity
24     lip pressor             lips pressed: opening x(1 - 0.9x), lips thinner
25     lips part               opening +0.03x
26     jaw drop                opening +0.24x, mouth lower and narrower, chin lower (face +8%
                               below its centre)
=====  ======================  =============================================================

Classes and their prototypes (EMFACS-style, as in the FACS Investigator's Guide)
-----------------------------------------------------------------------------------
==========  ======================================  ===================================
class       prototype AUs (one variant drawn)       optional extras (probability)
==========  ======================================  ===================================
angry       4+5+7+23                                24 (0.4), 10 (0.15)
disgust     9+15+16 (0.6) or 9+10 (0.4)             25 (0.3), 4 (0.25)
fear        1+2+4+5+7+20+26                         25 (0.5)
happy       6+12                                    25 (0.55), 26 (0.2)
sad         1+4+15                                  6 (0.15), 7 (0.15)
surprise    1+2+5+26                                25 (0.6)
neutral     (none)                                  only resting AUs and distractors
==========  ======================================  ===================================

Layout and determinism
----------------------
Image ``k`` belongs to subject ``k % num_subjects``; the j-th image of a subject
(``j = k // num_subjects``) takes its label from a per-subject permutation of
the seven classes (one permutation per block of seven), so classes are balanced
per subject and therefore per split.  Subjects (of those present) are shuffled
with the seed and cut into test, val and train, so no identity is in two
splits.  Image ``k``'s pixels, label and subject depend only on ``(seed, k,
num_subjects, size, render_scale)``: generating 100 or 200 images gives the
same first 100 (its split too, once ``num_images >= num_subjects``).
The per-image AU intensities are returned as the extra array
``action_units`` (N x len(AU_NAMES), float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from ..registry import DATASETS
from .store import CLASSES_FER2013, Prepared, summarize

__all__ = [
    "AU_LIST",
    "AU_NAMES",
    "CLASS_PROTOTYPES",
    "Identity",
    "make_synthetic",
    "read_synthetic",
    "render_face",
    "render_faces",
    "sample_expression",
    "sample_identity",
    "synthetic_layout",
]

GENERATOR_VERSION = 1

#: Action units the renderer knows, in the column order of ``action_units``.
AU_LIST: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 16, 20, 23, 24, 25, 26)
AU_NAMES: tuple[str, ...] = tuple(f"AU{n}" for n in AU_LIST)
_AU = {n: i for i, n in enumerate(AU_LIST)}

#: class -> (list of (probability, prototype AUs), {optional AU: probability}).
CLASS_PROTOTYPES: dict[str, tuple[list[tuple[float, tuple[int, ...]]], dict[int, float]]] = {
    "angry": ([(1.0, (4, 5, 7, 23))], {24: 0.4, 10: 0.15}),
    "disgust": ([(0.6, (9, 15, 16)), (0.4, (9, 10))], {25: 0.3, 4: 0.25}),
    "fear": ([(1.0, (1, 2, 4, 5, 7, 20, 26))], {25: 0.5}),
    "happy": ([(1.0, (6, 12))], {25: 0.55, 26: 0.2}),
    "sad": ([(1.0, (1, 4, 15))], {6: 0.15, 7: 0.15}),
    "surprise": ([(1.0, (1, 2, 5, 26))], {25: 0.6}),
    "neutral": ([(1.0, ())], {}),
}

# Domain tags for the seed sequences, so the streams never collide.
_TAG_IMAGE, _TAG_IDENTITY, _TAG_LABELS, _TAG_SPLITS = 0, 1, 2, 3


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    """Everything that stays fixed for one subject (see the module docstring)."""

    subject: int
    face_w: float  # half-width in output pixels at size 48
    elong: float  # half-height / half-width
    jaw_taper: float
    skin: float
    hair: float
    hair_style: int  # 0 short, 1 long, 2 fringe, 3 cropped
    hairline: float
    brow_tone: float
    lip_tone: float
    iris: float
    sclera: float
    clothing: float
    eye_sep: float
    eye_w: float
    eye_h: float
    eye_open: float
    eye_tilt: float
    eye_v: float
    brow_gap: float
    brow_arch: float
    brow_thick: float
    brow_len: float
    nose_len: float
    nose_w: float
    mouth_v: float
    mouth_w: float
    lip_up: float
    lip_lo: float
    corner: float  # resting corner height (+ down)
    fold: float  # baseline nasolabial depth ("age")
    glasses: int  # 0 none, 1 dark frames, 2 light frames
    stubble: float
    resting: tuple[float, ...]  # resting AU intensities (AU_LIST order)
    expressivity: float


def sample_identity(seed: int, subject: int) -> Identity:
    """Draw subject ``subject``'s identity; depends only on ``(seed, subject)``."""
    r = np.random.default_rng([seed, _TAG_IDENTITY, subject])
    u = r.uniform
    skin = u(85, 215)
    # hair mostly darker than skin, sometimes blond/grey (lighter than skin)
    hair = u(15, 90) if r.random() < 0.7 else u(110, 220)
    hair_style = int(r.choice(4, p=[0.4, 0.3, 0.15, 0.15]))
    resting = np.zeros(len(AU_LIST))
    for au in r.choice(AU_LIST, size=int(r.integers(0, 3)), replace=False):
        resting[_AU[int(au)]] = u(0.05, 0.3)
    return Identity(
        subject=int(subject),
        face_w=u(14.0, 18.0),
        elong=u(1.18, 1.42),
        jaw_taper=u(0.1, 0.4),
        skin=skin,
        hair=hair,
        hair_style=hair_style,
        hairline=u(-0.82, -0.62) if hair_style != 2 else u(-0.5, -0.38),
        brow_tone=max(8.0, min(hair + u(-10, 30), skin * u(0.35, 0.7))),
        lip_tone=skin * u(0.62, 0.88),
        iris=u(20, 95),
        sclera=min(250.0, max(skin * u(0.95, 1.2), u(150, 215))),
        clothing=u(10, 240),
        eye_sep=u(0.34, 0.46),
        eye_w=u(0.16, 0.21),
        eye_h=u(0.07, 0.095),
        eye_open=u(0.8, 1.15),
        eye_tilt=u(-0.025, 0.03),
        eye_v=u(-0.1, 0.0),
        brow_gap=u(0.15, 0.21),
        brow_arch=u(0.0, 0.05),
        brow_thick=u(1.4, 2.6),
        brow_len=u(0.36, 0.46),
        nose_len=u(0.26, 0.36),
        nose_w=u(0.13, 0.19),
        mouth_v=u(0.54, 0.63),
        mouth_w=u(0.26, 0.35),
        lip_up=u(0.04, 0.065),
        lip_lo=u(0.05, 0.085),
        corner=u(-0.015, 0.02),
        fold=u(0.0, 0.3),
        glasses=int(r.choice(3, p=[0.88, 0.08, 0.04])),
        stubble=u(0.04, 0.15) if r.random() < 0.12 else 0.0,
        resting=tuple(float(x) for x in resting),
        expressivity=u(0.8, 1.1),
    )


# ------------------------------------------------------------------------- expression


def sample_expression(rng: np.random.Generator, label: int, identity: Identity) -> np.ndarray:
    """AU intensities (len(AU_LIST), in [0, 1]) for class ``label`` on ``identity``."""
    variants, optional = CLASS_PROTOTYPES[CLASSES_FER2013[label]]
    probs = np.array([p for p, _ in variants])
    proto = variants[int(rng.choice(len(variants), p=probs / probs.sum()))][1]
    g = rng.uniform(0.45, 1.0) * identity.expressivity
    aus = np.zeros(len(AU_LIST))
    for au in proto:
        aus[_AU[au]] = g * rng.uniform(0.75, 1.2)
    for au, p in optional.items():
        if rng.random() < p:
            aus[_AU[au]] = max(aus[_AU[au]], g * rng.uniform(0.4, 1.0))
    # weak distractors: any AU may twitch a little
    twitch = rng.random(len(AU_LIST)) < 0.08
    aus = np.maximum(aus, twitch * rng.uniform(0.0, 0.35, len(AU_LIST)))
    aus = aus + np.asarray(identity.resting)
    return np.clip(aus, 0.0, 1.0)


# -------------------------------------------------------------------------- geometry


_BEZ: dict[int, np.ndarray] = {}


def _bezier_basis(n: int) -> np.ndarray:
    """(n, 3) Bernstein weights of a quadratic Bezier, cached per n."""
    w = _BEZ.get(n)
    if w is None:
        t = np.linspace(0.0, 1.0, n)
        w = _BEZ[n] = np.stack([(1 - t) ** 2, 2 * t * (1 - t), t**2], axis=1)
    return w


def _through(p0: Sequence[float], mid: Sequence[float], p2: Sequence[float], n: int = 12) -> np.ndarray:
    """Quadratic Bezier from p0 to p2 passing through ``mid`` at t = 0.5; (n, 2)."""
    c = (2.0 * mid[0] - 0.5 * (p0[0] + p2[0]), 2.0 * mid[1] - 0.5 * (p0[1] + p2[1]))
    ctrl = np.array([[p0[0], p0[1]], c, [p2[0], p2[1]]], dtype=float)
    return _bezier_basis(n) @ ctrl


_CIRC: dict[tuple[int, float, float], np.ndarray] = {}


def _ellipse_pts(cu: float, cv: float, ru: float, rv: float, n: int = 24, t0: float = 0.0, t1: float = 2 * math.pi) -> np.ndarray:
    """n points of an ellipse (or of the arc t0..t1) in face coordinates; (n, 2)."""
    key = (n, t0, t1)
    cs = _CIRC.get(key)
    if cs is None:
        t = np.linspace(t0, t1, n, endpoint=(t1 - t0) < 2 * math.pi - 1e-9)
        cs = _CIRC[key] = np.stack([np.cos(t), np.sin(t)], axis=1)
    return cs * (ru, rv) + (cu, cv)


_RAMP: dict[tuple[float, float, int], np.ndarray] = {}


def _ramp(w0: float, w1: float, n: int) -> np.ndarray:
    """Cached ``np.linspace(w0, w1, n)`` (stroke width profiles); do not modify."""
    r = _RAMP.get((w0, w1, n))
    if r is None:
        r = _RAMP[(w0, w1, n)] = np.linspace(w0, w1, n)
    return r


_FACE_T = _ellipse_pts(0.0, 0.0, 1.0, 1.0, 44)  # unit circle samples for the face outline


class _Canvas:
    """Draws face-coordinate shapes on a float PIL image at render scale."""

    def __init__(self, img: Image.Image, cx: float, cy: float, a: float, b: float, theta: float, rs: int):
        self.draw = ImageDraw.Draw(img)
        self.rs = rs
        self.c, self.s = math.cos(theta), math.sin(theta)
        # (u, v) -> render pixels: rotation of (u a, v b) about the face centre
        self.m = np.array([[a * self.c, a * self.s], [-b * self.s, b * self.c]]) * rs
        self.o = np.array([cx, cy]) * rs

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.m + self.o

    def poly(self, pts: np.ndarray, fill: float) -> None:
        self.draw.polygon(self.to_px(pts).ravel().tolist(), fill=float(fill))

    def stroke(self, pts: np.ndarray, width: float | np.ndarray, fill: float, closed: bool = False) -> None:
        """Variable-width stroke along a polyline; ``width`` in output pixels."""
        p = self.to_px(pts)
        d = np.empty_like(p)
        if closed:
            d[1:-1] = p[2:] - p[:-2]
            d[0] = p[1] - p[-1]
            d[-1] = p[0] - p[-2]
        else:
            d[1:-1] = p[2:] - p[:-2]
            d[0] = p[1] - p[0]
            d[-1] = p[-1] - p[-2]
        d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        half = 0.5 * self.rs * np.asarray(width, dtype=float)
        off = d[:, ::-1] * ((-1.0, 1.0) * np.reshape(half, (-1, 1)))  # normal (-dy, dx) times half width
        outer, inner = p + off, p - off
        if closed:  # quads between consecutive samples keep the ring hollow
            for i in range(len(p)):
                j = (i + 1) % len(p)
                q = np.stack([outer[i], outer[j], inner[j], inner[i]])
                self.draw.polygon(q.ravel().tolist(), fill=float(fill))
            return
        self.draw.polygon(np.concatenate([outer, inner[::-1]]).ravel().tolist(), fill=float(fill))


# ------------------------------------------------------------------------- rendering


def _background(r: np.random.Generator, size: int) -> np.ndarray:
    """Textured background at output size: blotches, optional stripes, grain."""
    base = r.uniform(35, 215)
    k = int(r.integers(3, 7))
    blot = np.asarray(
        Image.fromarray(r.normal(0, 1, (k, k)).astype(np.float32), "F").resize((size, size), Image.BICUBIC)
    )
    bg = base + r.uniform(8, 40) * blot
    if r.random() < 0.35:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        ang = r.uniform(0, math.pi)
        period = r.uniform(4, 14) * size / 48
        bg += r.uniform(5, 20) * np.sin(2 * math.pi * (xx * math.cos(ang) + yy * math.sin(ang)) / period + r.uniform(0, 6.3))
    bg += r.normal(0, r.uniform(2, 8), (size, size))
    return bg.astype(np.float32)


def render_face(identity: Identity, aus: np.ndarray, rng: np.random.Generator, size: int = 48, render_scale: int = 4) -> np.ndarray:
    """Draw one face with AU intensities ``aus`` (AU_LIST order); returns uint8 ``size x size``.

    ``rng`` supplies the pose, scene, lighting and noise of this image.
    """
    r = rng
    idt = identity
    A = {n: float(aus[i]) for i, n in enumerate(AU_LIST)}
    k = size / 48.0  # everything below is designed at 48 px
    rs = int(render_scale)
    big = size * rs

    # ---- pose
    a = idt.face_w * k * r.uniform(0.93, 1.07)
    b = a * idt.elong
    cx = size / 2 + r.uniform(-2.5, 2.5) * k
    cy = size / 2 + r.uniform(-1.5, 3.5) * k
    theta = math.radians(r.uniform(-10, 10))
    wk = a / 15.0  # stroke widths below are output pixels for a 15 px half-width face

    bg = _background(r, size)
    img = Image.fromarray(bg, "F").resize((big, big), Image.BILINEAR)
    cv = _Canvas(img, cx, cy, a, b, theta, rs)

    skin = idt.skin
    jaw = 1.0 + 0.08 * A[26]

    # ---- clothing, neck, hair behind, ears
    cv.poly(_ellipse_pts(0.0, 2.0 * jaw, 2.3, 0.85, 28), idt.clothing)
    cv.poly(np.array([[-0.55, 0.55], [0.55, 0.55], [0.62, 1.9], [-0.62, 1.9]]), skin * 0.78)
    if idt.hair_style == 1:  # long hair falls behind the shoulders
        top = _ellipse_pts(0.0, -0.12, 1.16, 1.02, 16, math.pi, 2 * math.pi)
        cv.poly(np.concatenate([[[-1.28, 1.35]], top, [[1.28, 1.35]]]), idt.hair * 0.92)
    for sgn in (-1, 1):
        cv.poly(_ellipse_pts(sgn * 0.98, 0.02, 0.14, 0.2, 14), skin * 0.9)
    if idt.hair_style in (0, 1, 2):
        cv.poly(_ellipse_pts(0.0, -0.14, 1.08, 0.98, 28), idt.hair)

    # ---- face outline (jaw tapers; AU26 lowers the chin)
    ct, st = _FACE_T[:, 0], _FACE_T[:, 1]
    lower = st > 0
    fu = ct * (1 - idt.jaw_taper * np.where(lower, st, 0.0) ** 2)
    fv = st * np.where(lower, jaw, 1.0)
    cv.poly(np.stack([fu, fv], 1), skin)

    # ---- cheeks (AU6 raises them; AU12 helps)
    raise_ = min(1.0, A[6] + 0.35 * A[12])
    if raise_ > 0.05:
        for sgn in (-1, 1):
            cv.poly(_ellipse_pts(sgn * 0.5, 0.3 - 0.1 * raise_, 0.22, 0.12, 16), min(255.0, skin * (1 + 0.06 * raise_) + 4 * raise_))
    if idt.stubble > 0:  # darker lower face following the jaw line, fading in upwards
        for top, depth in ((0.38, 0.5), (0.52, 1.0)):
            low = fv > top
            rim = _through((-0.9 * fu[low].max(), top), (0.0, top + 0.1), (0.9 * fu[low].max(), top), 8)
            cv.poly(np.concatenate([np.stack([fu[low], fv[low]], 1), rim]), skin * (1 - depth * idt.stubble))

    # ---- mouth geometry (needed for the folds)
    vm = idt.mouth_v + 0.03 * A[26]
    corner_v = vm + idt.corner - 0.15 * A[12] + 0.12 * A[15] + 0.02 * A[20] - 0.02 * A[10]
    corner_u = idt.mouth_w + 0.07 * A[12] + 0.12 * A[20] - 0.08 * A[23] - 0.03 * A[24] - 0.02 * A[15] - 0.04 * A[26]
    opening = (0.03 * A[25] + 0.24 * A[26] + 0.05 * A[16] + 0.05 * A[10]) * (1 - 0.9 * A[24]) * (1 - 0.5 * A[23])
    thin = max(0.25, 1 - 0.55 * A[23] - 0.4 * A[24] - 0.3 * A[20] - 0.2 * A[12])

    # ---- nasolabial folds (AU6/12/9/10, baseline age)
    fold = min(1.0, max(0.25 * A[6] + 0.7 * A[12], 0.55 * A[9], 0.55 * A[10]) + idt.fold)
    nv = idt.eye_v + 0.08 + idt.nose_len  # nose base line
    if fold > 0.08:
        for sgn in (-1, 1):
            p0 = (sgn * (idt.nose_w + 0.06), nv - 0.03 - 0.04 * A[9])
            p2 = (sgn * (corner_u + 0.07), corner_v + 0.06)
            mid = (sgn * (0.5 * abs(p0[0] + p2[0]) + 0.06), 0.5 * (p0[1] + p2[1]))  # bulges outward
            cv.stroke(_through(p0, mid, p2, 10), _ramp(1.0, 0.4, 10) * wk, skin * (1 - 0.3 * fold))

    # ---- forehead wrinkles (AU1 centre, AU2 sides) and glabella lines (AU4)
    ve = idt.eye_v
    vb = ve - idt.brow_gap
    if A[1] + A[2] > 0.15:
        for j in range(3):
            vw = vb - 0.15 - 0.08 * j
            if vw < idt.hairline + 0.05:
                break
            span_l = 0.18 + 0.35 * A[2]
            span_c = 0.15 + 0.2 * A[1]
            wr = _through((-span_c - span_l, vw + 0.02), (0, vw - 0.015), (span_c + span_l, vw + 0.02), 12)
            cv.stroke(wr, 0.55 * wk, skin * (1 - 0.22 * max(A[1], A[2])))
    if A[4] > 0.15:
        for sgn in (-1, 1):
            gl = np.array([[sgn * 0.05, vb - 0.06], [sgn * 0.06, vb + 0.02], [sgn * 0.055, vb + 0.08]])
            cv.stroke(gl, 0.6 * wk, skin * (1 - 0.3 * A[4]))

    # ---- eyes
    up = idt.eye_h * idt.eye_open * max(0.12, 1 + 1.1 * A[5] - 0.45 * A[7] - 0.25 * A[6] - 0.15 * A[9])
    lo = idt.eye_h * 0.8 * max(0.15, 1 - 0.5 * A[6] - 0.5 * A[7])
    ir_v = 0.082 * idt.eye_w / 0.185  # iris radius in v units
    ir_u = ir_v * b / a
    gaze = r.uniform(-0.04, 0.04)
    for sgn in (-1, 1):
        ex = sgn * idt.eye_sep
        inner = np.array([ex - sgn * idt.eye_w, ve + 0.01])
        outer = np.array([ex + sgn * idt.eye_w, ve - idt.eye_tilt])
        midp = 0.5 * (inner + outer)
        upper = _through(inner, midp + [sgn * 0.01, -up], outer, 12)
        lower = _through(outer, midp + [0.0, lo], inner, 12)
        cv.poly(np.concatenate([upper, lower]), idt.sclera)
        ic = (ex + gaze, ve - 0.1 * up + 0.01)
        cv.poly(_ellipse_pts(ic[0], ic[1], ir_u, ir_v, 16), idt.iris)
        cv.poly(_ellipse_pts(ic[0], ic[1], ir_u * 0.45, ir_v * 0.45, 10), idt.iris * 0.4)
        # lid covers (crescents of skin) hide the iris outside the opening
        cu = _through(inner, midp + [sgn * 0.01, -up - 1.6 * ir_v - 0.02], outer, 12)
        cv.poly(np.concatenate([upper, cu[::-1]]), skin * 0.9)
        cl = _through(outer, midp + [0.0, lo + 1.6 * ir_v + 0.02], inner, 12)
        cv.poly(np.concatenate([lower, cl[::-1]]), skin * 0.96)
        cv.stroke(upper, np.concatenate([_ramp(0.5, 1.1, 6), _ramp(1.1, 0.7, 6)]) * wk, min(idt.brow_tone, skin * 0.35))
        cv.stroke(lower, 0.35 * wk, skin * 0.7)
        if A[6] > 0.2:  # crow's feet and infra-orbital furrow
            ox, oy = outer
            for dv in (-0.05, 0.0, 0.05):
                cv.stroke(np.array([[ox + sgn * 0.04, oy + dv * 0.5], [ox + sgn * 0.12, oy + dv * 1.6]]), 0.45 * wk, skin * (1 - 0.25 * A[6]))
            fur = _through(inner + [sgn * 0.03, lo + 0.07], midp + [0, lo + 0.1], outer + [-sgn * 0.02, lo + 0.06], 10)
            cv.stroke(fur, 0.5 * wk, skin * (1 - 0.2 * A[6]))

    # ---- brows: AU1 inner up, AU2 outer up, AU4 down and together, AU9 inner down
    bi_v = vb - 0.15 * A[1] + 0.09 * A[4] * (1 - 0.7 * A[1]) + 0.05 * A[9]
    bm_v = vb - idt.brow_arch - 0.07 * A[2] - 0.03 * A[1] + 0.08 * A[4] + 0.02 * A[9]
    bo_v = vb + 0.01 - 0.15 * A[2] + 0.03 * A[4]
    bt = idt.brow_thick * (1 + 0.15 * A[4]) * wk
    for sgn in (-1, 1):
        bi_u = sgn * (idt.eye_sep - idt.eye_w + 0.02 - 0.06 * A[4] - 0.02 * A[9])
        bo_u = bi_u + sgn * idt.brow_len
        brow = _through((bi_u, bi_v), (0.5 * (bi_u + bo_u), bm_v), (bo_u, bo_v), 12)
        cv.stroke(brow, _ramp(1.0, 0.45, 12) * bt, idt.brow_tone)

    # ---- nose: bridge shade, wing curves, nostrils; AU9 wrinkles, raises and widens
    side = 1 if r.random() < 0.5 else -1
    cv.stroke(_through((side * 0.1, ve + 0.05), (side * 0.11, ve + 0.2), (side * 0.13, nv - 0.08), 8), 0.8 * wk, skin * 0.88)
    nw = idt.nose_w * (1 + 0.2 * A[9])
    nvr = nv - 0.045 * A[9] - 0.015 * A[10]
    for sgn in (-1, 1):
        cv.stroke(_through((sgn * 0.07, nvr - 0.09), (sgn * (nw + 0.01), nvr - 0.03), (sgn * 0.08, nvr + 0.01), 8), 0.6 * wk, skin * 0.72)
        cv.poly(_ellipse_pts(sgn * nw * 0.5, nvr, 0.055, 0.028 * (1 + 0.3 * A[9]), 10), skin * 0.42)
    if A[9] > 0.12:
        for j in range(3):
            vw = ve + 0.02 + 0.05 * j
            cv.stroke(_through((-0.1, vw + 0.01), (0, vw - 0.012), (0.1, vw + 0.01), 6), 0.5 * wk, skin * (1 - 0.4 * A[9]))

    # ---- mouth
    L = np.array([-corner_u, corner_v])
    R = np.array([corner_u, corner_v])
    ui_v = vm - 0.25 * opening - 0.06 * A[10]  # upper lip inner edge (centre)
    li_v = vm + 0.75 * opening + 0.06 * A[16]  # lower lip inner edge
    up_t = idt.lip_up * thin
    lo_t = idt.lip_lo * thin
    n = 14
    uo = _through(L, (0, ui_v - up_t), R, n)
    uo[:, 1] += 0.35 * up_t * np.exp(-((uo[:, 0] / 0.07) ** 2))  # Cupid's bow dip
    lo_curve = _through(R, (0, li_v + lo_t), L, n)
    cv.poly(np.concatenate([uo, lo_curve]), idt.lip_tone)
    ui = _through(L, (0, ui_v), R, n)
    li = _through(L, (0, li_v), R, n)
    gap = li[:, 1] - ui[:, 1]
    if opening + 0.05 * A[16] + 0.06 * A[10] > 0.012:
        cv.poly(np.concatenate([ui, li[::-1]]), r.uniform(15, 40))
        teeth = r.uniform(185, 235)
        th_up = np.minimum(0.05 + 0.06 * A[10] + 0.03 * A[12], 0.55 * gap)
        sel = slice(2, n - 2)
        tu = ui.copy()
        tu[:, 1] += th_up
        if th_up[sel].max() > 0.01:
            cv.poly(np.concatenate([ui[sel], tu[sel][::-1]]), teeth)
        if A[16] > 0.3 or A[10] > 0.5:
            tl = li.copy()
            tl[:, 1] -= np.minimum(0.03 + 0.03 * A[16], 0.3 * gap)
            cv.poly(np.concatenate([tl[sel], li[sel][::-1]]), teeth * 0.9)
    mid_line = _through(L, (0, 0.5 * (ui_v + li_v)), R, n)
    if opening < 0.03:
        cv.stroke(mid_line, np.concatenate([_ramp(0.5, 0.9, n // 2), _ramp(0.9, 0.5, n - n // 2)]) * wk, skin * 0.35)

    # ---- hair in front: hairline, fringe; cropped hair is a thin cap
    if idt.hair_style != 3:
        hl = idt.hairline
        if idt.hair_style == 2:  # fringe with a jagged edge
            xs = np.linspace(1.02, -1.02, 11)
            hv = hl + 0.05 * np.cos(xs * 3.0) + r.uniform(-0.03, 0.03, 11)
            edge = np.stack([xs, hv], 1)
        else:
            edge = _through((1.04, hl + 0.42), (0.0, hl), (-1.04, hl + 0.42), 12)
        top = _ellipse_pts(0.0, -0.14, 1.08, 0.98, 20, math.pi, 2 * math.pi)
        cv.poly(np.concatenate([top, edge]), idt.hair)
        for j in range(5):  # a few strands
            x0 = r.uniform(-0.7, 0.7)
            cv.stroke(_through((x0 * 0.6, -1.05), (x0 * 0.9, (hl - 1.0) / 2), (x0, hl + 0.03), 6), 0.5 * wk, idt.hair * r.uniform(0.75, 1.25))
    else:
        cap = _ellipse_pts(0.0, -0.05, 1.02, 0.98, 20, math.pi, 2 * math.pi)
        edge = _through((1.0, -0.45), (0.0, -0.82), (-1.0, -0.45), 10)
        cv.poly(np.concatenate([cap, edge]), skin * 0.5 + idt.hair * 0.5)

    # ---- glasses
    if idt.glasses:
        tone = 25.0 if idt.glasses == 1 else 175.0
        for sgn in (-1, 1):
            cv.stroke(_ellipse_pts(sgn * idt.eye_sep, ve + 0.01, idt.eye_w + 0.07, 0.14, 20), 0.7 * wk, tone, closed=True)
        cv.stroke(np.array([[-(idt.eye_sep - idt.eye_w - 0.07), ve - 0.02], [idt.eye_sep - idt.eye_w - 0.07, ve - 0.02]]), 0.6 * wk, tone)

    out = np.asarray(img.reduce(rs), dtype=np.float32)

    # ---- lighting: 3-D falloff and side light on the face, global gradient, exposure
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    fu = (dx * cv.c + dy * cv.s) / a
    fv = (-dx * cv.s + dy * cv.c) / b
    re = np.sqrt(fu**2 + fv**2)
    m = np.clip((1.15 - re) / 0.25, 0.0, 1.0)
    shade = 1.0 + m * (-r.uniform(0.05, 0.25) * np.minimum(re, 1.0) ** 4 + r.uniform(-0.15, 0.15) * np.clip(fu, -1, 1))
    ang = r.uniform(0, 2 * math.pi)
    grad = 1.0 + r.uniform(0.0, 0.35) * ((xx - size / 2) * math.cos(ang) + (yy - size / 2) * math.sin(ang)) / (size / 2)
    out = out * shade * grad * r.uniform(0.85, 1.12)
    out = gaussian_filter(out, r.uniform(0.25, 0.7) * k)
    out += r.normal(0.0, r.uniform(1.0, 4.0), out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- layout


def synthetic_layout(num_images: int, num_subjects: int, seed: int, val_fraction: float, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subject, label and split of every image (see "Layout" in the module docstring)."""
    if num_images < 0 or num_subjects < 1:
        raise ValueError("num_images must be >= 0 and num_subjects >= 1")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
    k = np.arange(num_images)
    subjects = k % num_subjects
    nth = k // num_subjects
    labels = np.empty(num_images, dtype=np.int64)
    ncls = len(CLASSES_FER2013)
    perms: dict[tuple[int, int], np.ndarray] = {}
    for i in range(num_images):
        key = (int(subjects[i]), int(nth[i]) // ncls)
        if key not in perms:
            perms[key] = np.random.default_rng([seed, _TAG_LABELS, key[0], key[1]]).permutation(ncls)
        labels[i] = perms[key][nth[i] % ncls]
    used = min(num_images, num_subjects)
    order = np.random.default_rng([seed, _TAG_SPLITS, used]).permutation(used)
    n_test = int(round(test_fraction * used))
    n_val = int(round(val_fraction * used))
    if used >= 3:  # a non-zero fraction always gets at least one subject
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    subject_split = np.empty(max(used, 1), dtype=object)
    subject_split[order[:n_test]] = "test"
    subject_split[order[n_test : n_test + n_val]] = "val"
    subject_split[order[n_test + n_val :]] = "train"
    splits = subject_split[subjects] if num_images else np.array([], dtype=object)
    return subjects, labels, splits.astype(str)


def render_faces(labels: Sequence[int], subjects: Sequence[int], indices: Sequence[int], *, seed: int = 0, size: int = 48, render_scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Render images ``indices`` (their per-image seeds) with the given labels and subjects.

    Returns ``(images uint8 N x size x size, action_units float32 N x len(AU_LIST))``.
    Image ``indices[i]`` is the same whatever else is rendered with it.
    """
    n = len(labels)
    images = np.empty((n, size, size), dtype=np.uint8)
    aus_all = np.empty((n, len(AU_LIST)), dtype=np.float32)
    cache: dict[int, Identity] = {}
    for i in range(n):
        s = int(subjects[i])
        if s not in cache:
            cache[s] = sample_identity(seed, s)
        rng = np.random.default_rng([seed, _TAG_IMAGE, int(indices[i])])
        aus = sample_expression(rng, int(labels[i]), cache[s])
        images[i] = render_face(cache[s], aus, rng, size=size, render_scale=render_scale)
        aus_all[i] = aus
    return images, aus_all


def make_synthetic(num_images: int = 4200, *, size: int = 48, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15, render_scale: int = 4, num_subjects: int = 300) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Generate the set: ``(images, index, action_units)``; index has the store's columns."""
    if size < 8 or render_scale < 1:
        raise ValueError("size must be >= 8 and render_scale >= 1")
    subjects, labels, splits = synthetic_layout(num_images, num_subjects, seed, val_fraction, test_fraction)
    images, aus = render_faces(labels, subjects, np.arange(num_images), seed=seed, size=size, render_scale=render_scale)
    index = pd.DataFrame(
        {
            "id": [f"syn_{i:06d}" for i in range(num_images)],
            "split": splits,
            "label": labels,
            "label_name": [CLASSES_FER2013[j] for j in labels],
            "subject": [f"s{s:04d}" for s in subjects],
            "source": "synthetic",
        }
    )
    return images, index, aus


@DATASETS.register("synthetic")
def read_synthetic(source=None, *, num_images: int = 4200, size: int = 48, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15, render_scale: int = 4, num_subjects: int = 300) -> Prepared:
    """Embedded procedurally drawn FACS-based face set (no download).

    ``source`` is ignored.  See :mod:`llfer.data.synthetic` for the identities,
    the AU -> drawing table and the class -> AU prototypes.
    """
    params = dict(num_images=int(num_images), size=int(size), seed=int(seed), val_fraction=float(val_fraction), test_fraction=float(test_fraction), render_scale=int(render_scale), num_subjects=int(num_subjects))
    images, index, aus = make_synthetic(**params)
    subj_per_split = {s: int(index.loc[index["split"] == s, "subject"].nunique()) for s in ("train", "val", "test")}
    report = {
        "counts": summarize(index, list(CLASSES_FER2013)),
        "subjects": subj_per_split,
        "action_units": list(AU_NAMES),
        "class_prototypes": {c: {"variants": [[p, [f"AU{a}" for a in v]] for p, v in var], "optional": {f"AU{a}": p for a, p in opt.items()}} for c, (var, opt) in CLASS_PROTOTYPES.items()},
    }
    provenance = {"generator": "synthetic", "version": GENERATOR_VERSION, **params}
    return Prepared(images=images, index=index, classes=list(CLASSES_FER2013), extras={"action_units": aus}, report=report, provenance=provenance)
