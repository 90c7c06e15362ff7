"""The Eulerian walk of :mod:`gfm.tokenization.eulerian.walk` as a small C kernel over a batch.

Why hand-written C: the walk (BFS tree, tree-parity eulerization, Hierholzer) is a sequential
pointer chase of a few dozen steps per molecule; in Python it costs ~100 µs per graph, which
alone misses the tokenizer's speed goal, and no library we depend on offers an Eulerian trail
with linear-time eulerization (networkx uses blossom matching and is ~50x slower). numba is not a
dependency, and ``torch.utils.cpp_extension.load_inline`` compiles the torch headers (tens of
seconds on first use). This kernel (``walk_kernel.c`` beside this file, shipped as package
data) is plain C99 with no headers beyond the C library; it builds with the system C compiler in well under a second and is cached by content hash in
``$GFM_KERNEL_CACHE`` (default ``~/.cache/gfm/kernels``). Without a compiler the tokenizer falls
back to the identical Python implementation (same walks, slower) and logs a warning once.

The C code mirrors :func:`~gfm.tokenization.eulerian.walk.walk_graph_python` step by step,
including the SplitMix64 draws, so both give the same walk for the same seed (tested).
"""

from __future__ import annotations

import ctypes

import numpy as np

from gfm.utils.c_kernels import CKernel, PackageSource

__all__ = ["KERNEL_SOURCE", "load_kernel", "kernel_available", "walk_batch_c", "emit_tokens_c"]

#: the C source, ``walk_kernel.c`` in this package (read on first build, not at import)
KERNEL_SOURCE = PackageSource(__package__, "walk_kernel.c")


def _declare(library: ctypes.CDLL) -> None:
    function = library.gfm_euler_walk_batch
    function.restype = ctypes.c_int64
    function.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 11
    emit = library.gfm_euler_emit
    emit.restype = None
    emit.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 16


_KERNEL = CKernel("gfm_eulerian_walk", KERNEL_SOURCE, ["-O2", "-std=c99"], _declare,
                  fallback="using the Python walk (same output, ~10x slower)")


def load_kernel() -> ctypes.CDLL | None:
    """Build (once, cached) and load the kernel; ``None`` with a logged warning if impossible."""
    return _KERNEL.load()


def kernel_available() -> bool:
    return load_kernel() is not None


def _address(array: np.ndarray) -> int:
    return array.ctypes.data


def walk_batch_c(
    node_ptr: np.ndarray,
    edge_ptr: np.ndarray,
    eu: np.ndarray,
    ev: np.ndarray,
    seeds: np.ndarray,
    randomize: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Walk every graph of a batch in one kernel call.

    Args:
        node_ptr: int64 ``[G+1]``; edge_ptr: int64 ``[G+1]``; eu, ev: int64 ``[M]`` local ids.
        seeds: uint64 ``[G]``; randomize: uint8 ``[G]`` (0: canonical walk, seed ignored).

    Returns:
        Same layout as :func:`~gfm.tokenization.eulerian.walk.walk_batch_python`.
    """
    library = load_kernel()
    if library is None:
        raise RuntimeError("the Eulerian walk kernel is not available on this machine")
    node_ptr = np.ascontiguousarray(node_ptr, dtype=np.int64)
    edge_ptr = np.ascontiguousarray(edge_ptr, dtype=np.int64)
    eu = np.ascontiguousarray(eu, dtype=np.int64)
    ev = np.ascontiguousarray(ev, dtype=np.int64)
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    randomize = np.ascontiguousarray(randomize, dtype=np.uint8)
    num_graphs = len(node_ptr) - 1
    capacity = int(node_ptr[-1]) + int(edge_ptr[-1])
    visit_ptr = np.zeros(num_graphs + 1, dtype=np.int64)
    visit_node = np.empty(capacity, dtype=np.int64)
    visit_edge = np.empty(capacity, dtype=np.int64)
    visit_flags = np.empty(capacity, dtype=np.int8)
    rank = np.empty(int(node_ptr[-1]), dtype=np.int64)
    status = library.gfm_euler_walk_batch(
        num_graphs,
        _address(node_ptr),
        _address(edge_ptr),
        _address(eu),
        _address(ev),
        _address(seeds),
        _address(randomize),
        _address(visit_ptr),
        _address(visit_node),
        _address(visit_edge),
        _address(visit_flags),
        _address(rank),
    )
    if status == -1:
        raise MemoryError("Eulerian walk kernel: out of memory")
    if status != 0:
        raise RuntimeError(f"Eulerian walk kernel failed with status {status} (a walk exceeded m + n visits)")
    total = int(visit_ptr[-1])
    return visit_ptr, visit_node[:total], visit_edge[:total], visit_flags[:total], rank


def emit_tokens_c(
    segment_ptr: np.ndarray,
    segment_start: np.ndarray,
    segment_length: np.ndarray,
    segment_node: np.ndarray,
    pool: np.ndarray,
    pool_node: np.ndarray,
    visit_ptr: np.ndarray,
    visit_flags: np.ndarray,
    directed_graph: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """C version of :func:`gfm.tokenization.eulerian.emit_tokens_numpy` (same arguments and output)."""
    library = load_kernel()
    if library is None:
        raise RuntimeError("the Eulerian walk kernel is not available on this machine")
    arrays = [np.ascontiguousarray(a, dtype=np.int64) for a in (segment_ptr, segment_start, segment_length,
                                                                  segment_node, pool, pool_node, visit_ptr)]
    segment_ptr, segment_start, segment_length, segment_node, pool, pool_node, visit_ptr = arrays
    visit_flags = np.ascontiguousarray(visit_flags, dtype=np.int8)
    directed_graph = np.ascontiguousarray(directed_graph, dtype=np.uint8)
    num_graphs = len(visit_ptr) - 1
    total_tokens = int(segment_length.sum())
    # links: 2 per step plus 4 per step token (lead + edge attribute segments of non-start visits)
    visits = np.diff(visit_ptr)
    visit_graph = np.repeat(np.arange(num_graphs), visits)
    slot = segment_ptr[visit_graph] + 1 + 3 * (np.arange(len(visit_graph)) - visit_ptr[visit_graph])
    steps = (visit_flags & 4) == 0
    total_links = int(2 * steps.sum() + 4 * (segment_length[slot[steps]] + segment_length[slot[steps] + 1]).sum())
    ids = np.empty(total_tokens, dtype=np.int64)
    node_index = np.empty(total_tokens, dtype=np.int64)
    token_ptr = np.empty(num_graphs + 1, dtype=np.int64)
    link_ptr = np.empty(num_graphs + 1, dtype=np.int64)
    link_src = np.empty(total_links, dtype=np.int64)
    link_dst = np.empty(total_links, dtype=np.int64)
    link_type = np.empty(total_links, dtype=np.int64)
    library.gfm_euler_emit(
        num_graphs,
        *(_address(a) for a in (segment_ptr, segment_start, segment_length, segment_node, pool, pool_node, visit_ptr,
                                visit_flags, directed_graph, token_ptr, ids, node_index, link_ptr, link_src,
                                link_dst, link_type)),
    )
    return ids, node_index, token_ptr, link_src, link_dst, link_type, link_ptr
