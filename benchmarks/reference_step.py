"""A plain five-call restatement of the CrossMatch ACDC loss.

It follows the structure of the official training script (the wasteful calls included),
mixes pseudo-labels and confidences separately and evaluates the Dice loss class by class
over gathered pixels. The step tests (tests/test_crossmatch_step.py, test_losses.py) use it
as a second, differently organised computation of the same loss. It shares the network and
the feature dropout with the package, so it cannot show that either matches the official
code: that proof is tests/test_official_replay.py, which replays the official script's own
numbers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from crossmatch_lite.features import drop_features

SMOOTH = 1e-4


def gather_dice(probs, labels, ignore=None):
    """Per class: 1 - (2 sum p*y + s) / (sum p^2 + sum y^2 + s) over pixels with ignore != 1."""
    k = probs.shape[1]
    total = 0.0
    for c in range(k):
        p = probs[:, c]
        y = (labels == c).float()
        if ignore is not None:
            keep = ignore != 1
            p, y = p[keep], y[keep]
        inter = (p * y).sum()
        total = total + 1 - (2 * inter + SMOOTH) / ((p * p).sum() + (y * y).sum() + SMOOTH)
    return total / k


def net_fp(model, images, rates):
    """The official `need_fp` call: the first half decoded clean, the second half clean
    and through each dropout stream, all in one decoder batch."""
    feats = model.encode(images)
    half = images.shape[0] // 2
    fa = [f[:half] for f in feats]
    fb = [f[half:] for f in feats]
    streams = [drop_features(fb, r) for r in rates]
    out = model.decode([torch.cat(level) for level in zip(fa, fb, *streams)])
    return out.chunk(2 + len(rates))


def reference_terms(model, x, y, u_w, s1, s2, box1, box2, m_w, thresh=0.95, eta=0.3, rates=(0.25, 0.75)):
    with torch.no_grad():  # train mode, as the official pass since 2025-12-10
        model.train()
        p_m = model(m_w)
        conf_m, lab_m = p_m.softmax(1).max(1)[0], p_m.argmax(1)
        _, _, p_m_weak, p_m_strong = net_fp(model, torch.cat([x, m_w]), rates)
        conf_m_weak, lab_m_weak = p_m_weak.softmax(1).max(1)[0], p_m_weak.argmax(1)
        conf_m_strong, lab_m_strong = p_m_strong.softmax(1).max(1)[0], p_m_strong.argmax(1)
    model.train()
    p_x, p_w, p_w_weak, p_w_strong = net_fp(model, torch.cat([x, u_w]), rates)
    p_s1, p_s2, p_s2_weak, p_s2_strong = net_fp(model, torch.cat([s1, s2]), rates)
    p_w = p_w.detach()
    conf_w, lab_w = p_w.softmax(1).max(1)[0], p_w.argmax(1)
    conf_ww, lab_ww = p_w_weak.softmax(1).max(1)[0], p_w_weak.argmax(1)
    conf_ws, lab_ws = p_w_strong.softmax(1).max(1)[0], p_w_strong.argmax(1)

    def mix(lab, conf, lab_src, conf_src, box):
        lab, conf = lab.clone(), conf.clone()
        lab[box == 1] = lab_src[box == 1]
        conf[box == 1] = conf_src[box == 1]
        return lab, conf

    l1, c1 = mix(lab_w, conf_w, lab_m, conf_m, box1)
    l2, c2 = mix(lab_w, conf_w, lab_m, conf_m, box2)
    lw2, cw2 = mix(lab_ww, conf_ww, lab_m_weak, conf_m_weak, box2)
    ls2, cs2 = mix(lab_ws, conf_ws, lab_m_strong, conf_m_strong, box2)

    def dice(p, lab, conf=None):
        return gather_dice(p.softmax(1), lab, None if conf is None else (conf < thresh).float())

    t = {
        "x": (F.cross_entropy(p_x, y) + gather_dice(p_x.softmax(1), y)) / 2,
        "s1": dice(p_s1, l1, c1),
        "s2": dice(p_s2, l2, c2),
        "kd_w_weak": dice(p_w_weak, lab_w, conf_w),
        "kd_w_strong": dice(p_w_strong, lab_w, conf_w),
        "kd_s_weak": dice(p_s2_weak, l2, c2),
        "kd_s_strong": dice(p_s2_strong, l2, c2),
        "kd_cross_weak": dice(p_s2_weak, lw2, cw2),
        "kd_cross_strong": dice(p_s2_strong, ls2, cs2),
    }
    t["kd"] = (1 - eta) * (t["kd_w_weak"] + t["kd_w_strong"] + t["kd_s_weak"] + t["kd_s_strong"]) / 4 \
        + eta * (t["kd_cross_weak"] + t["kd_cross_strong"]) / 2
    t["loss"] = (t["x"] + 0.25 * t["s1"] + 0.25 * t["s2"] + 0.5 * t["kd"]) / 2
    return t
