"""``scenes``: procedurally rendered indoor rooms with exact dense labels (an offline NYUv2/Replica stand-in).

Each scene is a room (floor, ceiling, four walls) furnished with box- and sphere-built beds,
tables, chairs, sofas, cabinets, TVs, paintings, windows, books and objects, lit by point lights
with textured, per-instance-coloured surfaces. Each scene is seen from several camera poses
("scans"), so data can be subsampled by scene or by scan as in Replica. Rays are cast
analytically (numpy), giving exact semantic labels (NYUv2's 13 classes), z-depth in metres,
camera-frame surface normals and edges (semantic and occlusion boundaries). Splits hold disjoint
scenes. The result is cached as ``.npy`` files in the NYUv2 layout read by :mod:`mtl.data.dense`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass

import numpy as np

from ..checks import check_count
from .. import tasks as T
from ..paths import cache_dir
from ._registry import DataBundle, register
from .cache import cached_entry
from .dense import FIELDS, NpyDenseDataset

GENERATOR_VERSION = 1
CLASSES = ("bed", "books", "ceiling", "chair", "floor", "furniture", "objects",
           "painting", "sofa", "table", "tv", "wall", "window")
C = {n: i for i, n in enumerate(CLASSES)}
PALETTE = {  # base albedo per class; instances jitter around it, several classes share wood tones
    "bed": (0.75, 0.70, 0.80), "books": (0.6, 0.3, 0.3), "ceiling": (0.92, 0.92, 0.9),
    "chair": (0.55, 0.38, 0.25), "floor": (0.6, 0.45, 0.3), "furniture": (0.5, 0.35, 0.22),
    "objects": (0.3, 0.55, 0.6), "painting": (0.7, 0.5, 0.3), "sofa": (0.35, 0.4, 0.6),
    "table": (0.58, 0.42, 0.28), "tv": (0.08, 0.08, 0.1), "wall": (0.85, 0.82, 0.75),
    "window": (0.8, 0.9, 1.0),
}
TASKS = ("segmentation", "depth", "normal", "edge")


@dataclass(frozen=True)
class SceneConfig:
    height: int = 48
    width: int = 64
    train_scenes: int = 24
    val_scenes: int = 6
    test_scenes: int = 8
    scans_per_scene: int = 10
    seed: int = 0
    fov_deg: float = 60.0

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- scene description


class Room:
    """Axis-aligned boxes and spheres in a room [0, W] × [0, H] × [0, D] (metres, y up)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.size = np.array([rng.uniform(3.5, 6.0), rng.uniform(2.5, 3.0), rng.uniform(3.5, 6.0)])
        self.boxes: list[tuple] = []     # (lo[3], hi[3], class, albedo[3], pattern, freq)
        self.spheres: list[tuple] = []   # (centre[3], radius, class, albedo[3], pattern, freq)
        self.footprints: list[tuple] = []
        self.surface = {"floor": self._material("floor"), "wall": self._material("wall"),
                        "ceiling": self._material("ceiling")}
        self.lights = [(np.array([rng.uniform(0.5, self.size[0] - 0.5), self.size[1] - 0.2,
                                  rng.uniform(0.5, self.size[2] - 0.5)]), rng.uniform(2.0, 3.5))
                       for _ in range(rng.integers(1, 3))]
        self.ambient = rng.uniform(0.25, 0.4)
        self._furnish()

    def _material(self, cls: str):
        base = np.array(PALETTE[cls])
        albedo = np.clip(base + self.rng.normal(0, 0.12, 3), 0.03, 1.0)
        return albedo, int(self.rng.integers(0, 4)), float(self.rng.uniform(2, 8))

    def add_box(self, lo, hi, cls, material=None):
        self.boxes.append((np.asarray(lo, float), np.asarray(hi, float), C[cls], *(material or self._material(cls))))

    def add_sphere(self, centre, r, cls):
        self.spheres.append((np.asarray(centre, float), float(r), C[cls], *self._material(cls)))

    def _place(self, w: float, d: float, against_wall: bool):
        """A free footprint (x0, z0, x1, z1) of size w × d, or None."""
        W, _, D = self.size
        for _ in range(30):
            if against_wall:
                side = self.rng.integers(0, 4)
                if side % 2 == 1:
                    w, d = d, w
                x0 = {0: self.rng.uniform(0, W - w), 1: 0.0, 2: self.rng.uniform(0, W - w), 3: W - w}[side]
                z0 = {0: D - d, 1: self.rng.uniform(0, D - d), 2: 0.0, 3: self.rng.uniform(0, D - d)}[side]
            else:
                x0, z0 = self.rng.uniform(0.3, W - w - 0.3), self.rng.uniform(0.3, D - d - 0.3)
            fp = (x0, z0, x0 + w, z0 + d)
            if all(fp[2] <= f[0] or fp[0] >= f[2] or fp[3] <= f[1] or fp[1] >= f[3] for f in self.footprints):
                self.footprints.append(fp)
                return fp
        return None

    def _furnish(self):
        r = self.rng
        H = self.size[1]
        for _ in range(r.integers(0, 2)):
            if fp := self._place(1.4, 2.0, True):
                x0, z0, x1, z1 = fp
                self.add_box((x0, 0, z0), (x1, 0.5, z1), "bed")
                self.add_box((x0, 0.5, z0), (x1, 0.62, z1), "bed")  # mattress
        for _ in range(r.integers(1, 3)):
            if fp := self._place(r.uniform(0.9, 1.5), r.uniform(0.6, 0.9), False):
                x0, z0, x1, z1 = fp
                top = r.uniform(0.65, 0.8)
                mat = self._material("table")
                self.add_box((x0, top - 0.05, z0), (x1, top, z1), "table", mat)
                for lx, lz in ((x0, z0), (x1 - 0.06, z0), (x0, z1 - 0.06), (x1 - 0.06, z1 - 0.06)):
                    self.add_box((lx, 0, lz), (lx + 0.06, top - 0.05, lz + 0.06), "table", mat)
                for _ in range(r.integers(0, 4)):
                    bx, bz = r.uniform(x0, x1 - 0.25), r.uniform(z0, z1 - 0.2)
                    self.add_box((bx, top, bz), (bx + r.uniform(0.12, 0.25), top + r.uniform(0.03, 0.2),
                                                 bz + r.uniform(0.12, 0.2)), "books")
                if r.random() < 0.6:
                    rad = r.uniform(0.06, 0.14)
                    self.add_sphere((r.uniform(x0 + rad, x1 - rad), top + rad, r.uniform(z0 + rad, z1 - rad)), rad,
                                    "objects")
        for _ in range(r.integers(1, 4)):
            if fp := self._place(0.45, 0.45, False):
                x0, z0, x1, z1 = fp
                mat = self._material("chair")
                self.add_box((x0, 0.4, z0), (x1, 0.46, z1), "chair", mat)
                self.add_box((x0, 0.46, z1 - 0.06), (x1, 0.95, z1), "chair", mat)
                for lx, lz in ((x0, z0), (x1 - 0.05, z0), (x0, z1 - 0.05), (x1 - 0.05, z1 - 0.05)):
                    self.add_box((lx, 0, lz), (lx + 0.05, 0.4, lz + 0.05), "chair", mat)
        if r.random() < 0.6 and (fp := self._place(2.0, 0.9, True)):
            x0, z0, x1, z1 = fp
            mat = self._material("sofa")
            self.add_box((x0, 0, z0), (x1, 0.45, z1), "sofa", mat)
            if x1 - x0 > z1 - z0:
                self.add_box((x0, 0.45, z1 - 0.2 if z1 > self.size[2] / 2 else z0),
                             (x1, 0.85, z1 if z1 > self.size[2] / 2 else z0 + 0.2), "sofa", mat)
            else:
                self.add_box((x1 - 0.2 if x1 > self.size[0] / 2 else x0, 0.45, z0),
                             (x1 if x1 > self.size[0] / 2 else x0 + 0.2, 0.85, z1), "sofa", mat)
        for _ in range(r.integers(1, 4)):
            if fp := self._place(r.uniform(0.6, 1.4), 0.45, True):
                x0, z0, x1, z1 = fp
                self.add_box((x0, 0, z0), (x1, r.uniform(0.8, min(2.1, H - 0.3)), z1), "furniture")
        for _ in range(r.integers(1, 6)):
            rad = r.uniform(0.1, 0.25)
            if fp := self._place(2 * rad, 2 * rad, False):
                x0, z0, x1, z1 = fp
                if r.random() < 0.5:
                    self.add_sphere(((x0 + x1) / 2, rad, (z0 + z1) / 2), rad, "objects")
                else:
                    self.add_box((x0, 0, z0), (x1, r.uniform(0.2, 0.6), z1), "objects")
        for cls, n, hgt, size in (("window", r.integers(0, 3), 0.9, (1.0, 1.2)),
                                  ("painting", r.integers(0, 3), 1.3, (0.7, 0.5)),
                                  ("tv", r.integers(0, 2), 1.1, (1.0, 0.6))):
            for _ in range(n):
                self._wall_panel(cls, r.uniform(size[0] * 0.7, size[0] * 1.3), size[1], hgt + r.uniform(-0.1, 0.2))

    def _wall_panel(self, cls: str, w: float, h: float, y0: float):
        W, H, D = self.size
        t = {"window": 0.02, "painting": 0.03, "tv": 0.06}[cls]
        side = self.rng.integers(0, 4)
        y1 = min(y0 + h, H - 0.1)
        if side in (0, 2):
            x0 = self.rng.uniform(0.1, W - w - 0.1)
            z0, z1 = (D - t, D) if side == 0 else (0, t)
            self.add_box((x0, y0, z0), (x0 + w, y1, z1), cls)
        else:
            z0 = self.rng.uniform(0.1, D - w - 0.1)
            x0, x1 = (0, t) if side == 1 else (W - t, W)
            self.add_box((x0, y0, z0), (x1, y1, z0 + w), cls)

    def inside_solid(self, p: np.ndarray, margin: float = 0.25) -> bool:
        return any(np.all(p > lo - margin) and np.all(p < hi + margin) for lo, hi, *_ in self.boxes) or \
            any(np.linalg.norm(p - c) < r + margin for c, r, *_ in self.spheres)


# ----------------------------------------------------------------------------- ray casting


def _pattern(kind: int, freq: float, u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Surface texture multiplier in [0.6, 1.1]: plain, stripes, checker, or blocky value noise."""
    if kind == 1:
        return 0.85 + 0.15 * np.sign(np.sin(freq * 3.0 * u))
    if kind == 2:
        return 0.8 + 0.25 * ((np.floor(freq * u) + np.floor(freq * v)) % 2)
    if kind == 3:
        h = (np.floor(freq * u).astype(np.int64) * 73856093) ^ (np.floor(freq * v).astype(np.int64) * 19349663) ^ seed
        return 0.75 + 0.3 * ((h % 1000) / 1000.0)
    return np.ones_like(u)


def render(room: Room, eye: np.ndarray, yaw: float, pitch: float, height: int, width: int,
           fov_deg: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cast one ray per pixel; returns image [H,W,3], label [H,W], depth [H,W,1], normal [H,W,3], edge [H,W]."""
    f = (width / 2) / np.tan(np.deg2rad(fov_deg) / 2)
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d_cam = np.stack([(jj - width / 2) / f, -(ii - height / 2) / f, np.ones_like(jj)], -1).reshape(-1, 3)
    d_cam /= np.linalg.norm(d_cam, axis=1, keepdims=True)                            # [P, 3]
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    R = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    d = d_cam @ R.T                                                                  # [P, 3] world directions
    P = d.shape[0]
    d_safe = np.where(np.abs(d) < 1e-9, 1e-9, d)

    # room interior: exit distance along each axis
    t_axes = np.where(d_safe > 0, (room.size - eye) / d_safe, (0 - eye) / d_safe)   # [P, 3]
    axis = t_axes.argmin(1)
    t_best = t_axes[np.arange(P), axis]
    n_best = np.zeros((P, 3))
    n_best[np.arange(P), axis] = -np.sign(d[np.arange(P), axis])
    cls = np.where(axis == 1, np.where(d[:, 1] > 0, C["ceiling"], C["floor"]), C["wall"])
    inst = np.where(axis == 1, np.where(d[:, 1] > 0, -3, -1), -2)                    # -1 floor, -2 wall, -3 ceiling

    if room.boxes:
        lo = np.stack([b[0] for b in room.boxes])[:, None]                           # [N, 1, 3]
        hi = np.stack([b[1] for b in room.boxes])[:, None]
        t1, t2 = (lo - eye) / d_safe[None], (hi - eye) / d_safe[None]                # [N, P, 3]
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        tnear, near_axis, tfar = tmin.max(-1), tmin.argmax(-1), tmax.min(-1)         # [N, P]
        tnear = np.where((tnear <= tfar) & (tnear > 1e-4), tnear, np.inf)
        k = tnear.argmin(0)                                                          # [P]
        tk = tnear[k, np.arange(P)]
        hit = tk < t_best
        ax = near_axis[k, np.arange(P)]
        t_best = np.where(hit, tk, t_best)
        nb = np.zeros((P, 3))
        nb[np.arange(P), ax] = -np.sign(d[np.arange(P), ax])
        n_best = np.where(hit[:, None], nb, n_best)
        cls = np.where(hit, np.array([b[2] for b in room.boxes])[k], cls)
        inst = np.where(hit, k, inst)
    if room.spheres:
        cen = np.stack([s[0] for s in room.spheres])[:, None]                        # [S, 1, 3]
        rad = np.array([s[1] for s in room.spheres])[:, None]
        oc = eye - cen
        b = (d[None] * oc).sum(-1)                                                   # [S, P]
        disc = b**2 - ((oc**2).sum(-1) - rad**2)
        ts = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        ts = np.where(ts > 1e-4, ts, np.inf)
        k = ts.argmin(0)
        tk = ts[k, np.arange(P)]
        hit = tk < t_best
        t_best = np.where(hit, tk, t_best)
        pts = eye + tk[:, None] * d
        ns = (pts - cen[k, 0]) / rad[k]
        n_best = np.where(hit[:, None], ns, n_best)
        cls = np.where(hit, np.array([s[2] for s in room.spheres])[k], cls)
        inst = np.where(hit, 1000 + k, inst)

    pts = eye + t_best[:, None] * d                                                  # [P, 3]
    image = _shade(room, pts, n_best, inst, d).reshape(height, width, 3)
    image = np.clip(image + rng.normal(0, 0.015, image.shape), 0, 1)
    depth = (t_best * d_cam[:, 2]).reshape(height, width, 1)                          # z-depth
    # camera frame (x right, y up, z forward)
    normal = (n_best @ R).reshape(height, width, 3)
    label = cls.reshape(height, width)
    return {"image": image.astype(np.float32), "label": label.astype(np.int64), "depth": depth.astype(np.float32),
            "normal": normal.astype(np.float32), "edge": edges(label, depth[..., 0], inst.reshape(height, width))}


def _shade(room: Room, pts, normals, inst, d) -> np.ndarray:
    """Lambert shading of textured albedo under the room's point lights plus ambient light."""
    P = pts.shape[0]
    albedo = np.zeros((P, 3))
    tex = np.ones(P)
    ax = np.abs(normals).argmax(1)
    u = np.where(ax == 0, pts[:, 2], pts[:, 0])
    v = np.where(ax == 1, pts[:, 2], pts[:, 1])
    materials = {-1: room.surface["floor"], -2: room.surface["wall"], -3: room.surface["ceiling"]}
    materials.update({i: b[3:] for i, b in enumerate(room.boxes)})
    materials.update({1000 + i: s[3:] for i, s in enumerate(room.spheres)})
    for key in np.unique(inst):
        m = inst == key
        alb, kind, freq = materials[int(key)]
        albedo[m] = alb
        tex[m] = _pattern(kind, freq, u[m], v[m], int(key) + 7)
    light = np.full(P, room.ambient)
    for pos, power in room.lights:
        to_l = pos - pts
        dist = np.linalg.norm(to_l, axis=1)
        light += power * np.clip((normals * to_l).sum(1) / dist, 0, None) / (1 + 0.25 * dist**2)
    emissive = np.isin(inst, [i for i, b in enumerate(room.boxes) if b[2] == C["window"]])
    light = np.where(emissive, 1.2, light)
    return albedo * tex[:, None] * light[:, None] * 0.8


def edges(label: np.ndarray, depth: np.ndarray, inst: np.ndarray) -> np.ndarray:
    """1 on semantic/instance boundaries and depth discontinuities (> 8 % relative), else 0."""
    e = np.zeros(label.shape, bool)
    for a in (label, inst):
        e[:, :-1] |= a[:, :-1] != a[:, 1:]
        e[:-1, :] |= a[:-1, :] != a[1:, :]
    rel = lambda x, y: np.abs(x - y) / np.minimum(x, y)  # noqa: E731
    e[:, :-1] |= rel(depth[:, :-1], depth[:, 1:]) > 0.08
    e[:-1, :] |= rel(depth[:-1, :], depth[1:, :]) > 0.08
    return e.astype(np.uint8)


def camera(room: Room, rng: np.random.Generator):
    """A camera pose standing near a wall, looking into the room, outside every object."""
    W, H, D = room.size
    centre = np.array([W / 2, 1.0, D / 2])
    for _ in range(100):
        eye = np.array([rng.uniform(0.3, W - 0.3), rng.uniform(1.2, 1.7), rng.uniform(0.3, D - 0.3)])
        if room.inside_solid(eye):
            continue
        to_c = centre - eye
        yaw = np.arctan2(to_c[0], to_c[2]) + rng.uniform(-0.5, 0.5)
        return eye, yaw, rng.uniform(-0.45, -0.05)
    return np.array([W / 2, 1.5, 0.2]), 0.0, -0.2


# ----------------------------------------------------------------------------- generation and cache


def render_into(cfg: SceneConfig, folder) -> None:
    """Render every split into ``folder`` (NYUv2 ``.npy`` layout plus ``meta.json`` listing each file's size)."""
    from pathlib import Path

    folder = Path(folder)
    meta = {"config": asdict(cfg), "version": GENERATOR_VERSION, "classes": CLASSES, "splits": {}}
    counts = {"train": cfg.train_scenes, "val": cfg.val_scenes, "test": cfg.test_scenes}
    for s_id, (split, n_scenes) in enumerate(counts.items()):
        for field in ("image", "label", "depth", "normal", "edge"):
            (folder / split / field).mkdir(parents=True, exist_ok=True)
        rows, i = [], 0
        for scene in range(n_scenes):
            rng = np.random.default_rng([cfg.seed, s_id, scene])
            room = Room(rng)
            for scan in range(cfg.scans_per_scene):
                eye, yaw, pitch = camera(room, rng)
                out = render(room, eye, yaw, pitch, cfg.height, cfg.width, cfg.fov_deg, rng)
                for field, arr in out.items():
                    np.save(folder / split / field / f"{i}.npy", arr)
                rows.append({"scene": scene, "scan": scan})
                i += 1
        meta["splits"][split] = rows
    meta["files"] = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*.npy"))}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def generate(cfg: SceneConfig, root) -> None:
    """Render every split into ``root``, atomically (a temporary folder renamed into place)."""
    from pathlib import Path

    root = Path(root)
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        render_into(cfg, tmp)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify(root) -> dict:
    """The cache's ``meta.json`` after checking that every file it lists has its recorded size
    (caches written before sizes were recorded: every split/field holds one file per scan);
    raises ``ValueError`` naming the first missing or damaged file."""
    from pathlib import Path

    root = Path(root)
    meta = json.loads((root / "meta.json").read_text())
    if "files" in meta:
        expected = meta["files"]
    else:
        expected = {f"{s}/{f}/{i}.npy": None for s, rows in meta["splits"].items()
                    for f in ("image", "label", "depth", "normal", "edge") for i in range(len(rows))}
    for rel, size in expected.items():
        p = root / rel
        if not p.is_file():
            raise ValueError(f"missing {p}")
        if size is not None and p.stat().st_size != size:
            raise ValueError(f"{p} has {p.stat().st_size} bytes, meta.json records {size}")
    return meta


def ensure(cfg: SceneConfig, root=None):
    """The cache folder of ``cfg``, rendered first if it is missing or fails :func:`verify`
    (built once under a lock when several processes ask at once; see :mod:`mtl.data.cache`)."""
    from pathlib import Path

    root = Path(root) if root else cache_dir() / "scenes" / cfg.key()
    cached_entry(root, verify, lambda tmp: render_into(cfg, tmp))
    return root


@register("scenes")
def load_scenes(tasks=TASKS, height: int = 48, width: int = 64, train_scenes: int = 24, val_scenes: int = 6,
                test_scenes: int = 8, scans_per_scene: int = 10, seed: int = 0, root=None) -> DataBundle:
    """Procedural indoor scenes with segmentation (13 classes), depth, normals and edges."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"scenes has no task {unknown}; valid tasks: {TASKS}")
    for k, v in dict(height=height, width=width, train_scenes=train_scenes, val_scenes=val_scenes,
                     test_scenes=test_scenes, scans_per_scene=scans_per_scene).items():
        check_count(k, v)
    if height % 8 or width % 8:
        raise ValueError(f"height and width must be multiples of 8 (the SegNet pools 3 times), got {height}×{width}")
    cfg = SceneConfig(height, width, train_scenes, val_scenes, test_scenes, scans_per_scene, seed)
    path = ensure(cfg, root)
    meta = json.loads((path / "meta.json").read_text())                    # verified by ensure
    factories = {"segmentation": lambda: T.segmentation("segmentation", len(CLASSES)), "depth": T.depth,
                 "normal": T.normal, "edge": T.edge}
    task_list = [factories[t]() for t in tasks]
    fields = {t: FIELDS[t] for t in tasks}
    splits = {s: NpyDenseDataset(path, s, fields) for s in ("train", "val", "test")}
    return DataBundle("scenes", task_list, splits["train"], splits["val"], splits["test"],
                      info={"root": str(path), "classes": CLASSES, "meta": meta["splits"], "config": asdict(cfg),
                            "input_shape": (3, height, width)})
