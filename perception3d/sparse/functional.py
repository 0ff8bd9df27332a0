"""Sparse convolution as gather → GEMM → scatter over a kernel map, with a hand-written backward.

For every kernel offset k with pairs (i → o):   out[o] += feats[i] @ W_k        (W_k: [C_in, C_out])
The SubM centre offset is the identity map, so it is a single dense `feats @ W_centre` with no gather/scatter.

Pairs are processed in chunks through small reusable buffers: on CPU a freshly allocated large tensor costs
page faults that are slower than the arithmetic (measured: filling a new 143 MB tensor takes ~6x as long as
copying into an existing one), so the working set is kept to a few MB and in cache.
"""
from __future__ import annotations

import torch

from .kmap import KernelMap

_CPU_CHUNK_BYTES = 4 << 20  # rows per chunk are chosen so one buffer is about this size on CPU


def _chunk_rows(device: torch.device, channels: int, total: int) -> int:
    if device.type != "cpu":
        return max(total, 1)
    return max(1024, _CPU_CHUNK_BYTES // (4 * max(channels, 1)))


def _chunks(counts: list, skip: int | None, device: torch.device, channels: int):
    """(rows per chunk, iterator of (offset k, start, end)) over the pairs of every offset but `skip`."""
    max_count = max(counts) if counts else 0
    rows = min(max_count, _chunk_rows(device, channels, max_count))

    def spans():
        start = 0
        for k, count in enumerate(counts):
            if k != skip:
                for s in range(start, start + count, rows):
                    yield k, s, min(s + rows, start + count)
            start += count
    return rows, spans()


def gather_gemm_scatter(dst: torch.Tensor, src: torch.Tensor, w: torch.Tensor, gather_idx: torch.Tensor,
                scatter_idx: torch.Tensor, counts: list, skip: int | None) -> None:
    """dst[scatter_idx[p]] += src[gather_idx[p]] @ w[k(p)] for every pair p (w: [K, C_src, C_dst]), in place.

    Pairs of offset k are the k-th run of `counts` in the index arrays (the `KernelMap` layout); offset `skip`
    (the identity of a SubM map) is left out. Public so that other layers can run a conv over a subset of pairs
    (E-3DSNN's event-driven path does).
    """
    c_src, c_dst = w.shape[1], w.shape[2]
    rows, spans = _chunks(counts, skip, src.device, max(c_src, c_dst))
    if rows == 0:
        return
    gbuf = src.new_empty(rows, c_src)
    pbuf = src.new_empty(rows, c_dst)
    for k, s, e in spans:
        g, p = gbuf[:e - s], pbuf[:e - s]
        torch.index_select(src, 0, gather_idx[s:e], out=g)
        torch.mm(g, w[k], out=p)
        dst.index_add_(0, scatter_idx[s:e], p)


def _backward_pairs(grad_feats: torch.Tensor | None, grad_w: torch.Tensor | None, feats: torch.Tensor,
                    weight_t: torch.Tensor | None, grad_out: torch.Tensor, kmap: KernelMap) -> None:
    """One pass over the pairs for both gradients, gathering grad_out rows once per chunk:
    grad_feats[in] += grad_out[out] @ W_k^T and grad_w[k] += feats[in]^T @ grad_out[out]
    (``weight_t`` = W^T as [K, C_out, C_in], contiguous; needed only for grad_feats)."""
    c_in, c_out = feats.shape[1], grad_out.shape[1]
    rows, spans = _chunks(kmap.counts, kmap.identity, feats.device, max(c_in, c_out))
    if rows == 0:
        return
    abuf = feats.new_empty(rows, c_in)
    bbuf = grad_out.new_empty(rows, c_out)
    pbuf = feats.new_empty(rows, c_in)
    for k, s, e in spans:
        n = e - s
        b = bbuf[:n]
        torch.index_select(grad_out, 0, kmap.out_idx[s:e], out=b)
        if grad_feats is not None:
            torch.mm(b, weight_t[k], out=pbuf[:n])
            grad_feats.index_add_(0, kmap.in_idx[s:e], pbuf[:n])
        if grad_w is not None:
            a = abuf[:n]
            torch.index_select(feats, 0, kmap.in_idx[s:e], out=a)
            grad_w[k].addmm_(a.t(), b)


class SparseConvFunction(torch.autograd.Function):
    """out = Σ_k scatter_out(gather_in(feats) @ W_k); weight given as [K, C_in, C_out]."""

    @staticmethod
    def forward(ctx, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        feats = feats.contiguous()
        weight = weight.contiguous()
        c_out = weight.shape[2]
        if kmap.identity is not None:
            out = torch.mm(feats, weight[kmap.identity])
        else:
            out = feats.new_zeros(kmap.n_out, c_out)
        gather_gemm_scatter(out, feats, weight, kmap.in_idx, kmap.out_idx, kmap.counts, kmap.identity)
        ctx.save_for_backward(feats, weight)
        ctx.kmap = kmap
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        feats, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        grad_out = grad_out.contiguous()
        grad_feats = grad_w = weight_t = None
        centre = kmap.identity
        if ctx.needs_input_grad[0]:
            # W^T made contiguous once: a GEMM with a transposed-view operand runs at about half speed here
            weight_t = weight.transpose(1, 2).contiguous()
            if centre is not None:
                grad_feats = torch.mm(grad_out, weight_t[centre])
            else:
                grad_feats = grad_out.new_zeros(feats.shape[0], feats.shape[1])
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(weight)
            if centre is not None:
                grad_w[centre] = feats.t() @ grad_out
        _backward_pairs(grad_feats, grad_w, feats, weight_t, grad_out, kmap)
        return grad_feats, grad_w, None


def sparse_conv(feats: torch.Tensor, weight_krsc: torch.Tensor, kmap: KernelMap,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a kernel map. `weight_krsc` in spconv 2.x layout [C_out, *kernel, C_in]; returns [n_out, C_out]."""
    c_out, c_in = weight_krsc.shape[0], weight_krsc.shape[-1]
    w = weight_krsc.reshape(c_out, -1, c_in).permute(1, 2, 0)  # [K, C_in, C_out]
    if w.dtype != feats.dtype:
        w = w.to(feats.dtype)
    out = SparseConvFunction.apply(feats, w, kmap)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out


def sparse_pool(feats: torch.Tensor, kmap: KernelMap, mode: str) -> torch.Tensor:
    """Max or average over the active inputs of every output site (inactive sites do not count).

    The max starts from zero, as spconv's does (its output buffer is zero-initialised): max(0, max_i x_i).
    """
    if kmap.identity is not None:
        raise ValueError("sparse_pool expects a strided kernel map")
    n_out, c = kmap.n_out, feats.shape[1]
    src = feats.index_select(0, kmap.in_idx)
    index = kmap.out_idx.unsqueeze(1).expand(-1, c)
    if mode == "max":
        return feats.new_zeros(n_out, c).scatter_reduce(0, index, src, "amax", include_self=True)
    return feats.new_zeros(n_out, c).scatter_reduce(0, index, src, "mean", include_self=False)


GELU_ROW_BUCKET = 256


def gelu(feats: torch.Tensor, bucket: int = GELU_ROW_BUCKET) -> torch.Tensor:
    """GELU (erf form, as ``F.gelu``) of a feature matrix [N, C] whose row count N changes on every call.

    On CPU, PyTorch runs fp32 GELU (forward and backward) through oneDNN, which JIT-compiles one primitive per
    input shape and keeps it in a cache of up to 1,024 shapes. The number of active sites differs in every
    batch, so each call met a new shape: in DSVT-P training on the mini dataset the process grew by ~3 MB per
    iteration (0.8 → 3.1 GB over 960 iterations) and every new shape paid a JIT compilation. Rows are padded
    up to a multiple of ``bucket`` so the shapes repeat; GELU is element-wise and oneDNN's kernel computes each
    element alike wherever it sits, so the result and its gradient are bitwise those of ``F.gelu`` (tested).
    CUDA, tracing and ONNX export take ``F.gelu`` directly.
    """
    n = feats.shape[0]
    padded = -(-n // bucket) * bucket
    if (padded == n or feats.device.type != "cpu" or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export()):
        return torch.nn.functional.gelu(feats)
    flat = feats.reshape(n, -1)
    out = torch.nn.functional.gelu(torch.nn.functional.pad(flat, (0, 0, 0, padded - n)))[:n]
    return out.reshape(feats.shape)
