"""Dual TV-L1 optical flow in PyTorch, many frame pairs at once, on any device (docs/prepare.md).

The algorithm and its defaults are OpenCV's ``DualTVL1OpticalFlow`` (Zach, Pock & Bischof 2007, in
the form of Sánchez, Meinhardt-Llopis & Facciolo, IPOL 2013), so that a model trained on OpenCV's
flow sees the same flow from this one. For images ``I0, I1`` (grey levels 0..255) it minimises

    E(u) = sum |grad u1| + |grad u2| + lambda * |rho(u)|,   rho(u) = I1(x + u) - I0(x)

coarse to fine. **Pyramid**: ``nscales`` levels, each a bilinear ``cv2.resize`` of the previous by
``zoom`` (0.8) with OpenCV's pixel-centre mapping ``src = (dst + 0.5) / zoom - 0.5`` and output size
``round(size * zoom)``; no presmoothing (OpenCV has none); levels below 16 px are dropped. The flow
of a level is upsampled bilinearly to the next and divided by ``zoom``. **Per level**, ``warps``
times: warp ``I1`` and its centred gradient (replicated borders) by the current flow with bicubic
interpolation (as OpenCV's remap of float images: the Keys kernel with ``a = -0.75`` at the exact
positions, taps outside the image are 0), and linearise ``rho(u) = rho_c + grad I1w . u``. Then
alternate, with ``l_t = lambda * theta`` and ``g = |grad I1w|^2``, until ``sum |u_new - u|^2 <=
epsilon^2 * H * W`` or ``outer x inner`` iterations (the outer loop first median-filters u, 5x5,
replicated borders):

    v = u + c * grad I1w,   c = clamp(-rho(u) / g, -l_t, l_t)     (thresholding step)
    u = v + theta * div p                                          (div: backward differences)
    p = (p + tau/theta * grad u) / (1 + tau/theta * |grad u|)      (grad: forward differences)

with one dual field p per flow component, set to 0 at the start of each level.

Performance (the solver is a few hundred cheap stencil steps; everything is memory traffic):

* the batch is one tensor ``(N, ...)`` and both flow components are one ``(N, 2, H, W)`` tensor,
  so each step is a handful of whole-batch tensor ops, with no Python loop over pixels or pairs;
* ``p`` is stored times ``theta`` (``q = theta * p``): then ``div q`` is already ``theta * div p``
  and the dual update ``q = (q + tau * grad u) / (1 + tau/theta * |grad u|)`` needs no extra scale;
* ``v`` is never stored: the step ``u_new - u = c * grad I1w + div q`` is formed in the divergence
  buffer, added to u in place and its squared sum is the stopping error;
* the per-warp constants (``grad I1w``, ``rho_c``, ``-1/g``) are computed once per warp, turning
  the three-way threshold into one multiply and one clamp (where ``g`` is below float epsilon
  OpenCV takes the full step ``-l_t * sign(rho)``; a huge ``1/g`` gives the same);
* stopping is per pair, as OpenCV's: a pair whose error falls below epsilon leaves the batch for the
  rest of that warp (its state is written back and the working tensors shrink), so an easy pair
  costs no more than alone, and a hard one does not make the others iterate;
* buffers are allocated once per warp and updated in place;
* on CPU the median uses ``cv2.medianBlur`` (exact, vectorised) on the tensors' memory; elsewhere it
  is the median of the 25 shifted copies.

Measured on one CPU core (docs/prepare.md): about 5x faster than OpenCV's, with a mean end-point
error to it of 0.02 px on real frames, no more than OpenCV's own flow moves when its input changes by
a thousandth of a grey level (the median and the threshold turn rounding differences into small
flow differences).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fpar.errors import FparError


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV's ``DualTVL1OpticalFlow_create()`` defaults (and dense_flow's)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    zoom: float = 0.8
    median: int = 5


MIN_LEVEL_SIZE = 16  # px; OpenCV stops the pyramid at a level narrower or lower than this


def tvl1_flow(
    first: torch.Tensor | np.ndarray,
    second: torch.Tensor | np.ndarray,
    params: TVL1Params = TVL1Params(),
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """TV-L1 flow from ``first`` to ``second``: grey ``(N, H, W)`` (or one ``(H, W)`` pair), values 0..255.

    Returns float32 ``(N, H, W, 2)`` (or ``(H, W, 2)``) in pixels, x right, y down, on ``device``
    (default: the inputs' device).
    """
    first_t, second_t = (torch.as_tensor(x) for x in (first, second))
    if first_t.shape != second_t.shape or first_t.ndim not in (2, 3) or min(first_t.shape[-2:]) < 3:
        shapes = f"{tuple(first_t.shape)} and {tuple(second_t.shape)}"
        raise FparError(f"TV-L1 needs two grey images (or batches) of one size, at least 3x3; got {shapes}")
    single = first_t.ndim == 2
    if single:
        first_t, second_t = first_t[None], second_t[None]
    device = torch.device(device) if device is not None else first_t.device
    i0 = first_t.to(device=device, dtype=torch.float32)
    i1 = second_t.to(device=device, dtype=torch.float32)
    levels = [(i0, i1)]
    for _ in range(1, params.nscales):
        a, b = levels[-1]
        height, width = round(a.shape[-2] * params.zoom), round(a.shape[-1] * params.zoom)
        if height < MIN_LEVEL_SIZE or width < MIN_LEVEL_SIZE:
            break
        pair = torch.stack([a, b], 1)  # one resize for both images
        small = resize_linear(pair, (height, width), 1 / params.zoom)
        levels.append((small[:, 0], small[:, 1]))
    flow = None
    for a, b in reversed(levels):
        if flow is None:
            flow = a.new_zeros(a.shape[0], 2, *a.shape[-2:])
        else:
            flow = resize_linear(flow, a.shape[-2:]).mul_(1 / params.zoom)
        flow = _solve_level(a, b, flow, params)
    out = flow.permute(0, 2, 3, 1).contiguous()
    return out[0] if single else out


def resize_linear(x: torch.Tensor, size: tuple[int, int], scale: float | None = None) -> torch.Tensor:
    """``cv2.resize(..., INTER_LINEAR)`` of the last two dims of ``x`` to ``size``.

    ``scale`` is the source step per output pixel (OpenCV uses ``1 / fx`` when given a factor, the
    size ratio otherwise); sample positions are clamped to the image, as OpenCV does.
    """
    for dim, out_size in ((-1, size[1]), (-2, size[0])):
        in_size = x.shape[dim]
        step = scale if scale is not None else in_size / out_size
        # positions in double, as OpenCV computes them, on the CPU (not every device has doubles)
        pos = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * step - 0.5).clamp_(0, in_size - 1)
        low = pos.floor().long()
        high = (low + 1).clamp_(max=in_size - 1)
        weight = (pos - low).to(x.device, x.dtype)
        low, high = low.to(x.device), high.to(x.device)
        shape = [1] * x.ndim
        shape[dim] = out_size
        a, b = x.index_select(dim, low), x.index_select(dim, high)
        x = a.lerp_(b, weight.view(shape))
    return x


def centred_gradient(image: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` -> ``(..., 2, H, W)``: half the difference of the neighbours, replicated borders."""
    padded = F.pad(image.unsqueeze(-3), (1, 1, 1, 1), mode="replicate").squeeze(-3)
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return torch.stack([gx, gy], -3)


def _warp_bicubic(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) sampled at ``x + flow`` like ``cv2.remap(INTER_CUBIC)``, 0 outside."""
    height, width = images.shape[-2:]
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    sx = (flow[:, 0] + xs).mul_(2 / (width - 1)).sub_(1)  # grid_sample's [-1, 1] corner-aligned coordinates
    sy = (flow[:, 1] + ys).mul_(2 / (height - 1)).sub_(1)
    grid = torch.stack([sx, sy], -1)
    return F.grid_sample(images, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _median5(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Median filter (size x size, replicated borders) of each plane of ``flow`` (N, 2, H, W), in place."""
    if flow.device.type == "cpu":
        planes = flow.view(-1, *flow.shape[-2:]).numpy()
        for plane in planes:
            plane[...] = cv2.medianBlur(plane, size)
        return flow
    return flow.copy_(median_shifted(flow, size))


def median_shifted(images: torch.Tensor, size: int) -> torch.Tensor:
    """Median filter (size x size, replicated borders) of the last two dims, on any device: the
    median of the ``size**2`` shifted copies (what ``cv2.medianBlur`` computes on the CPU)."""
    pad = size // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    height, width = images.shape[-2:]
    shifted = torch.stack([padded[..., dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)])
    return shifted.median(0).values


def _solve_level(i0: torch.Tensor, i1: torch.Tensor, flow: torch.Tensor, params: TVL1Params) -> torch.Tensor:
    """Refine ``flow`` (N, 2, H, W) between ``i0`` and ``i1`` (N, H, W) at one pyramid level."""
    n, _, height, width = flow.shape
    l_t = params.lambda_ * params.theta
    taut = params.tau / params.theta
    stop = params.epsilon**2 * height * width
    grad1 = centred_gradient(i1)
    warp_sources = torch.cat([i1.unsqueeze(1), grad1], 1)  # I1, dI1/dx, dI1/dy: warped together
    dual = flow.new_zeros(n, 2, 2, height, width)  # theta * p: [pair, flow component, x/y]
    for _ in range(params.warps):
        warped = _warp_bicubic(warp_sources, flow)
        i1w, grad_w = warped[:, :1], warped[:, 1:]
        # rho(u) = rho_c + grad_w . u, constant part from the flow the images were warped with
        rho_c = (i1w - i0.unsqueeze(1)).squeeze(1) - (grad_w * flow).sum(1)
        g = grad_w.square().sum(1)
        neg_inv_g = torch.where(g > torch.finfo(torch.float32).eps, g, 1e-30).reciprocal_().neg_()
        _iterate(flow, dual, grad_w, rho_c, neg_inv_g, l_t, taut, params, stop)
    return flow


def _iterate(
    flow: torch.Tensor,
    dual: torch.Tensor,
    grad_w: torch.Tensor,
    rho_c: torch.Tensor,
    neg_inv_g: torch.Tensor,
    l_t: float,
    taut: float,
    params: TVL1Params,
    stop: float,
) -> None:
    """The inner/outer iterations of one warp, updating ``flow`` and ``dual`` in place.

    Pairs that converge leave the working set; see the module docstring.
    """
    index = None  # None: the whole batch is being iterated, on the callers' tensors themselves
    u, q = flow, dual
    step = torch.empty_like(u)
    fgrad = u.new_zeros(*u.shape[:2], 2, *u.shape[2:])  # forward differences; last column/row stay 0
    norm = u.new_empty(u.shape)
    rho = torch.empty_like(rho_c)
    for _ in range(params.outer_iterations):
        if params.median > 1:
            _median5(u, params.median)
        for _ in range(params.inner_iterations):
            torch.addcmul(rho_c, grad_w[:, 0], u[:, 0], out=rho)
            rho.addcmul_(grad_w[:, 1], u[:, 1])
            c = rho.mul_(neg_inv_g).clamp_(-l_t, l_t).unsqueeze(1)
            # step = c * grad_w + div q (backward differences, q = 0 left of and above the image)
            torch.add(q[:, :, 0], q[:, :, 1], out=step)
            step[..., 1:].sub_(q[:, :, 0, :, :-1])
            step[..., 1:, :].sub_(q[:, :, 1, :-1, :])
            step.addcmul_(c, grad_w)
            u.add_(step)
            flat = step.view(step.shape[0], 1, -1)
            error = torch.bmm(flat, flat.transpose(1, 2)).view(-1)  # per-pair sum of squares in one op
            torch.sub(u[..., 1:], u[..., :-1], out=fgrad[:, :, 0, :, :-1])
            torch.sub(u[..., 1:, :], u[..., :-1, :], out=fgrad[:, :, 1, :-1, :])
            # |grad u| as sqrt(x^2 + y^2): torch.hypot is several times slower on CPU
            torch.mul(fgrad[:, :, 0], fgrad[:, :, 0], out=norm)
            norm.addcmul_(fgrad[:, :, 1], fgrad[:, :, 1]).sqrt_().mul_(taut).add_(1)
            q.add_(fgrad, alpha=params.tau).div_(norm.unsqueeze(2))
            done = error <= stop
            if bool(done.any()):
                if index is not None:
                    flow[index], dual[index] = u, q
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    return
                index = keep if index is None else index[keep]
                u, q = u[keep], q[keep]
                grad_w, rho_c, neg_inv_g = grad_w[keep], rho_c[keep], neg_inv_g[keep]
                step, fgrad, norm, rho = step[keep], fgrad[keep], norm[keep], rho[keep]
    if index is not None:
        flow[index], dual[index] = u, q
