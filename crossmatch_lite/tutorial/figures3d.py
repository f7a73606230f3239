"""Figures of 3D volumes (Left Atrium, toy_la): planes, training views, CutMix boxes,
predictions and rendered surfaces (notebook 08).

Volumes are (C, X, Y, Z) images and (X, Y, Z) labels, z the slice axis, as the data
readers return them. Planes are named as for the LA scans: *axial* is the (x, y) plane at
one z, *coronal* the (x, z) plane at one y, *sagittal* the (y, z) plane at one x; coronal
and sagittal slices are drawn with z upwards. Every function returns a titled matplotlib
figure; saving and display are `figures.show`'s job. Surfaces are marching-cubes meshes
from scikit-image where it is installed, else voxels (matplotlib only).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .figures import BOX_COLOR, CLASS_COLORS, _np, display_window, new_figure

PLANES = ("axial", "coronal", "sagittal")
_PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}
_PLANE_AXES_SHOWN = {"axial": ("x", "y"), "coronal": ("x", "z"), "sagittal": ("y", "z")}
LABEL_COLOR = CLASS_COLORS[3]  # ground truth: green
PRED_COLOR = CLASS_COLORS[2]  # prediction: orange


# ---------------------------------------------------------------- slicing
def label_centre(label, default=None) -> tuple[int, int, int]:
    """Voxel (x, y, z) at the centre of mass of the foreground (the volume's centre where
    there is none, or `default`)."""
    label = _np(label)
    fg = np.argwhere(label > 0)
    if len(fg) == 0:
        return tuple(default) if default is not None else tuple(int(s // 2) for s in label.shape)
    return tuple(int(round(v)) for v in fg.mean(0))


def plane(volume, name: str, index: int) -> np.ndarray:
    """The 2D slice of an (X, Y, Z) array in plane `name` at `index`, oriented for imshow:
    rows run along the plane's second axis (y for axial, z otherwise)."""
    vol = _np(volume)
    return np.take(vol, int(index), axis=_PLANE_AXIS[name]).T


def _show_plane(ax, image, title: str | None = None) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, origin="lower", interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _contour(ax, mask, color: str, width: float = 1.2, style: str = "solid") -> None:
    mask = _np(mask)
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=width, linestyles=style,
                   origin="lower")


def _outline_legend(fig, entries: Sequence[tuple[str, str]]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=1.6, label=name) for name, c in entries]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)


# ---------------------------------------------------------------- one volume, three planes
def plot_planes(image, label, title: str, centre: tuple[int, int, int] | None = None):
    """Axial, coronal and sagittal slices through the label's centre (or `centre`), the
    label's outline on top; the crossing lines mark where the other two planes cut."""
    img = display_window(_np(image)[0])
    label = _np(label)
    cx, cy, cz = centre if centre is not None else label_centre(label)
    at = {"axial": cz, "coronal": cy, "sagittal": cx}
    cross = {"axial": (cx, cy), "coronal": (cx, cz), "sagittal": (cy, cz)}
    fig, axes = new_figure(1, 3, figsize=(11.5, 4.0))
    for ax, name in zip(axes[0], PLANES):
        h, v = _PLANE_AXES_SHOWN[name]
        axis_letter = "zyx"[list(_PLANE_AXIS).index(name)]
        _show_plane(ax, plane(img, name, at[name]), f"{name} ({h}, {v}) at {axis_letter} = {at[name]}")
        _contour(ax, plane(label > 0, name, at[name]), LABEL_COLOR, 1.6)
        ax.axvline(cross[name][0], color="white", lw=0.6, alpha=0.6)
        ax.axhline(cross[name][1], color="white", lw=0.6, alpha=0.6)
        ax.set_xlabel(h)
        ax.set_ylabel(v)
    _outline_legend(fig, [("label", LABEL_COLOR)])
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- training views
def _box_slice(boxes: Sequence, b: int, depth: int) -> int:
    """The z slice through the middle of the first non-empty box of sample b (else the middle)."""
    for box in boxes:
        zs = np.flatnonzero(_np(box[b]).any(axis=(0, 1)))
        if len(zs):
            return int(zs[len(zs) // 2])
    return depth // 2


def plot_views_3d(u_w, strong: Sequence, boxes: Sequence, title: str, n: int = 2):
    """Rows: the first n samples of an unlabeled batch; columns: the weak view u_w and each
    strong view s_i (its CutMix box already filled from the source batch), all at the same
    axial slice: the middle of the sample's first box, or the patch's middle without one.
    Each box is outlined on its own view, with its share of the patch's volume."""
    u_w = _np(u_w)
    strong, boxes = [_np(s) for s in strong], [_np(b) for b in boxes]
    n = min(n, len(u_w))
    names = ["u_w (weak)"] + [f"s{i + 1} (strong + CutMix)" for i in range(len(strong))]
    fig, axes = new_figure(n, len(names), figsize=(3.2 * len(names), 3.1 * n + 0.4))
    for b in range(n):
        z = _box_slice(boxes, b, u_w.shape[-1])
        views = [u_w[b, 0]] + [s[b, 0] for s in strong]
        lo, hi = np.percentile(views[0], [1, 99])  # one window for all views: changes stay visible
        for j, (name, vol) in enumerate(zip(names, views)):
            ax = axes[b][j]
            _show_plane(ax, np.clip((plane(vol, "axial", z) - lo) / max(hi - lo, 1e-6), 0, 1),
                        f"sample {b}: {name}, z = {z}")
            if j > 0:
                box = boxes[j - 1][b]
                _contour(ax, plane(box, "axial", z), BOX_COLOR, 1.6)
                ax.set_title(f"{ax.get_title()}\nbox {100 * box.mean():.1f}% of the patch"
                             if box.any() else f"{ax.get_title()}\nno box (p = 1 - cutmix_p)", fontsize=9)
    _outline_legend(fig, [("CutMix box", BOX_COLOR)])
    fig.suptitle(title)
    return fig


def plot_box_layouts(layouts: dict, title: str, intended: Sequence[float] | None = None):
    """Rows: box layouts (e.g. official, clean: the same random numbers written to different
    axes); columns: the boxes projected onto the (x, y), (x, z) and (y, z) planes, one
    outline per box. The row label gives the mean share of the patch each box covers."""
    import matplotlib

    names = list(layouts)
    first = _np(layouts[names[0]])
    n, (X, Y, Z) = len(first), first.shape[1:]
    colours = [matplotlib.colormaps["tab10"](k % 10) for k in range(n)]
    views = [("x", "y", 2), ("x", "z", 1), ("y", "z", 0)]
    fig, axes = new_figure(len(names), 3, figsize=(11.0, 3.3 * len(names) + 0.3))
    for r, name in enumerate(names):
        boxes = _np(layouts[name])
        share = 100 * boxes.reshape(n, -1).mean(1)
        for c, (h, v, axis) in enumerate(views):
            ax = axes[r][c]
            extent = {"x": X, "y": Y, "z": Z}
            ax.add_patch(matplotlib.patches.Rectangle((-0.5, -0.5), extent[h], extent[v], fill=False,
                                                      edgecolor="0.3", lw=1.0, ls="--"))
            for k in range(n):
                proj = boxes[k].max(axis=axis).T
                _contour(ax, proj, colours[k], 1.4)
                if proj.any():
                    ax.contourf(proj.astype(np.float32), levels=[0.5, 1.5], colors=[colours[k]], alpha=0.12,
                                origin="lower")
            ax.set_xlim(-1, extent[h])
            ax.set_ylim(-1, extent[v])
            ax.set_aspect("equal")
            ax.set_xlabel(h)
            ax.set_ylabel(v)
            ax.set_title(f"{name}: ({h}, {v}) projection", fontsize=9)
        axes[r][0].set_ylabel(f"{name}\nmean box {share.mean():.1f}% of the patch\ny", fontsize=9)
    if intended is not None:
        title += f"\n(intended: {100 * intended[0]:.0f}-{100 * intended[1]:.0f}% of the patch's volume)"
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- predictions
def plot_predictions_3d(cases, predictions: dict, title: str, dice: dict | None = None):
    """Rows: cases; columns: the image, the label, the prediction (axial slice through the
    label's centre) and label versus prediction outlines on the coronal slice there.

    predictions: case id -> (X, Y, Z) prediction; dice (optional): case id -> Dice."""
    fig, axes = new_figure(len(cases), 4, figsize=(12.5, 3.0 * len(cases) + 0.4))
    for r, case in enumerate(cases):
        img = display_window(_np(case.image)[0])
        label, pred = _np(case.label) > 0, _np(predictions[case.id]) > 0
        cx, cy, cz = label_centre(label)
        score = f", Dice {100 * dice[case.id]:.1f}%" if dice and case.id in dice else ""
        _show_plane(axes[r][0], plane(img, "axial", cz), f"{case.id}: axial z = {cz}")
        _show_plane(axes[r][1], plane(img, "axial", cz), "label")
        _contour(axes[r][1], plane(label, "axial", cz), LABEL_COLOR, 1.6)
        _show_plane(axes[r][2], plane(img, "axial", cz), f"prediction{score}")
        _contour(axes[r][2], plane(pred, "axial", cz), PRED_COLOR, 1.6)
        _show_plane(axes[r][3], plane(img, "coronal", cy), f"coronal y = {cy}: both")
        _contour(axes[r][3], plane(label, "coronal", cy), LABEL_COLOR, 1.6)
        _contour(axes[r][3], plane(pred, "coronal", cy), PRED_COLOR, 1.2, "dashed")
    _outline_legend(fig, [("label", LABEL_COLOR), ("prediction", PRED_COLOR)])
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- surfaces
def has_marching_cubes() -> bool:
    try:
        from skimage.measure import marching_cubes  # noqa: F401
    except ImportError:
        return False
    return True


def surface_mesh(mask, spacing: Sequence[float] | None = None, max_faces: int = 60000):
    """(vertices (V, 3) in (x, y, z) units of `spacing`, faces (F, 3)) of the mask's
    surface by marching cubes (scikit-image), coarser steps for large masks; None if
    scikit-image is missing or the mask is empty or full."""
    mask = _np(mask) > 0
    if not has_marching_cubes() or not mask.any() or mask.all():
        return None
    from skimage.measure import marching_cubes

    sp = tuple(float(v) for v in (spacing if spacing is not None else (1.0, 1.0, 1.0)))
    padded = np.pad(mask, 1).astype(np.float32)  # closes surfaces that touch the border
    step = 1
    while True:
        verts, faces, _, _ = marching_cubes(padded, 0.5, spacing=sp, step_size=step)
        if len(faces) <= max_faces or step >= 8:
            break
        step += 1
    return verts - np.asarray(sp), faces


def _voxels(ax, mask, colour, max_side: int = 40) -> None:
    """The matplotlib fallback: the mask as voxels, subsampled to at most max_side a side."""
    mask = _np(mask) > 0
    k = max(1, int(np.ceil(max(mask.shape) / max_side)))
    ax.voxels(mask[::k, ::k, ::k], facecolors=colour, edgecolor="none", alpha=0.8)


def plot_surfaces(masks: dict, title: str, spacing: Sequence[float] | None = None, elev: float = 20.0,
                  azim: float = -60.0):
    """One 3D panel per named (X, Y, Z) mask (e.g. label, prediction): its surface as a
    marching-cubes mesh (scikit-image), else voxels; one shared view and scale."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    names = list(masks)
    colours = [LABEL_COLOR, PRED_COLOR, CLASS_COLORS[1], CLASS_COLORS[4]]
    fig, axes = new_figure(1, len(names), figsize=(4.6 * len(names), 4.6), subplot_kw={"projection": "3d"})
    shape = np.array(_np(masks[names[0]]).shape)
    sp = np.asarray(spacing or (1.0, 1.0, 1.0))
    mesh_ok = has_marching_cubes()
    for ax, name, colour in zip(axes[0], names, colours):
        mask = _np(masks[name]) > 0
        if mesh_ok:
            mesh = surface_mesh(mask, sp)
            if mesh is not None:
                verts, faces = mesh
                poly = Poly3DCollection(verts[faces], facecolor=colour, edgecolor="none", alpha=0.9)
                poly.set_facecolor(_shade(verts, faces, colour))
                ax.add_collection3d(poly)
            extent = shape * sp
        else:
            _voxels(ax, mask, colour)
            extent = np.ceil(shape / max(1, int(np.ceil(max(shape) / 40))))
        ax.set_xlim(0, extent[0])
        ax.set_ylim(0, extent[1])
        ax.set_zlim(0, extent[2])
        ax.set_box_aspect(tuple(extent))
        ax.view_init(elev=elev, azim=azim)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("z")
        ax.tick_params(labelsize=7)
        ax.set_title(f"{name} ({int(mask.sum())} voxels)", fontsize=10)
    how = "marching cubes (scikit-image)" if mesh_ok else "voxels (install scikit-image for meshes)"
    fig.suptitle(f"{title}\n{how}")
    return fig


def _shade(verts, faces, colour) -> np.ndarray:
    """Per-face colours lit from one direction, so the surface's shape reads in a still image."""
    from matplotlib.colors import to_rgba

    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    light = np.array([0.4, -0.5, 0.75])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.abs(normals @ light)
    rgba = np.tile(np.array(to_rgba(colour)), (len(faces), 1))
    rgba[:, :3] *= shade[:, None]
    return rgba
