/* The Eulerian walk and token emission of gfm's Eulerian tokenizer, over a batch of graphs.
   Built and cached by gfm.utils.c_kernels; called through ctypes by kernel.py beside it. Mirrors
   walk.py's walk_graph_python step by step (same SplitMix64 draws, same walks). Plain C99. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NEGATIVE (-(((int64_t)1) << 60))

static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t rng_below(uint64_t *state, int64_t bound) {
    return (int64_t)(rng_next(state) % (uint64_t)bound);
}

typedef struct {
    int64_t *degree, *ptr, *fill, *adj, *component, *parent, *parent_edge, *order, *begin;
    int64_t *parity, *in_join, *best, *best_node, *start, *duplicates, *eu_aug, *ev_aug;
    int64_t *ptr_aug, *adj_aug, *cursor, *stack_node, *stack_edge, *component_order;
    uint8_t *used;
} workspace_t;

/* CSR half-edge lists in edge order, shuffled per node when rng != NULL. */
static void adjacency(int64_t n, int64_t m, const int64_t *eu, const int64_t *ev, int64_t *ptr,
                      int64_t *fill, int64_t *adj, uint64_t *rng) {
    int64_t v, e, i;
    for (v = 0; v <= n; v++) ptr[v] = 0;
    for (e = 0; e < m; e++) { ptr[eu[e] + 1]++; ptr[ev[e] + 1]++; }
    for (v = 0; v < n; v++) ptr[v + 1] += ptr[v];
    for (v = 0; v < n; v++) fill[v] = ptr[v];
    for (e = 0; e < m; e++) { adj[fill[eu[e]]++] = e; adj[fill[ev[e]]++] = e; }
    if (rng) {
        for (v = 0; v < n; v++) {
            int64_t s = ptr[v];
            for (i = ptr[v + 1] - s - 1; i > 0; i--) {
                int64_t j = rng_below(rng, i + 1), t = adj[s + i];
                adj[s + i] = adj[s + j];
                adj[s + j] = t;
            }
        }
    }
}

static int64_t walk_one(int64_t n, int64_t m, const int64_t *eu, const int64_t *ev, uint64_t seed,
                        int randomize, workspace_t *w, int64_t *out_node, int64_t *out_edge,
                        int8_t *out_flags, int64_t *rank) {
    uint64_t state = seed;
    uint64_t *rng = randomize ? &state : NULL;
    int64_t v, e, i, c, k, num_components = 0, count = 0, num_dup = 0, out = 0;
    if (n == 0) return 0;
    for (v = 0; v < n; v++) w->degree[v] = 0;
    for (e = 0; e < m; e++) { w->degree[eu[e]]++; w->degree[ev[e]]++; }
    adjacency(n, m, eu, ev, w->ptr, w->fill, w->adj, rng);

    for (v = 0; v < n; v++) w->component[v] = -1;
    for (int64_t root = 0; root < n; root++) {
        int64_t head;
        if (w->component[root] >= 0) continue;
        w->begin[num_components] = count;
        w->component[root] = num_components;
        w->parent[root] = -1;
        w->parent_edge[root] = -1;
        w->order[count++] = root;
        head = w->begin[num_components];
        while (head < count) {
            int64_t u = w->order[head++];
            for (k = w->ptr[u]; k < w->ptr[u + 1]; k++) {
                int64_t x;
                e = w->adj[k];
                x = eu[e] == u ? ev[e] : eu[e];
                if (w->component[x] < 0) {
                    w->component[x] = num_components;
                    w->parent[x] = u;
                    w->parent_edge[x] = e;
                    w->order[count++] = x;
                }
            }
        }
        num_components++;
    }
    w->begin[num_components] = n;

    for (c = 0; c < num_components; c++) {
        int64_t b = w->begin[c], end = w->begin[c + 1], odd = 0, best_value = NEGATIVE;
        int64_t end_a = -1, end_b = -1;
        for (i = b; i < end; i++) odd += w->degree[w->order[i]] & 1;
        if (odd == 0) {
            w->start[c] = rng ? w->order[b + rng_below(rng, end - b)] : w->order[b];
            continue;
        }
        for (i = b; i < end; i++) { v = w->order[i]; w->parity[v] = w->degree[v] & 1; }
        for (i = end - 1; i > b; i--) {
            v = w->order[i];
            w->in_join[v] = w->parity[v];
            if (w->parity[v]) w->parity[w->parent[v]] ^= 1;
        }
        for (i = b; i < end; i++) {
            v = w->order[i];
            if (w->degree[v] & 1) { w->best[v] = 0; w->best_node[v] = v; }
            else { w->best[v] = NEGATIVE; w->best_node[v] = -1; }
        }
        for (i = end - 1; i > b; i--) {
            int64_t p, candidate;
            v = w->order[i];
            if (w->best[v] == NEGATIVE) continue;
            p = w->parent[v];
            candidate = w->best[v] + (w->in_join[v] ? 1 : -1);
            if (w->best[p] != NEGATIVE && w->best[p] + candidate > best_value) {
                best_value = w->best[p] + candidate;
                end_a = w->best_node[p];
                end_b = w->best_node[v];
            }
            if (candidate > w->best[p]) { w->best[p] = candidate; w->best_node[p] = w->best_node[v]; }
        }
        for (i = b; i < end; i++) {
            v = w->order[i];
            w->parity[v] = ((w->degree[v] & 1) && v != end_a && v != end_b) ? 1 : 0;
        }
        for (i = end - 1; i > b; i--) {
            v = w->order[i];
            if (w->parity[v]) {
                w->duplicates[num_dup++] = w->parent_edge[v];
                w->parity[w->parent[v]] ^= 1;
            }
        }
        w->start[c] = (rng && rng_below(rng, 2)) ? end_b : end_a;
    }

    for (e = 0; e < m; e++) { w->eu_aug[e] = eu[e]; w->ev_aug[e] = ev[e]; }
    for (k = 0; k < num_dup; k++) {
        w->eu_aug[m + k] = eu[w->duplicates[k]];
        w->ev_aug[m + k] = ev[w->duplicates[k]];
    }
    adjacency(n, m + num_dup, w->eu_aug, w->ev_aug, w->ptr_aug, w->fill, w->adj_aug, rng);
    for (c = 0; c < num_components; c++) w->component_order[c] = c;
    if (rng) {
        for (i = num_components - 1; i > 0; i--) {
            int64_t j = rng_below(rng, i + 1), t = w->component_order[i];
            w->component_order[i] = w->component_order[j];
            w->component_order[j] = t;
        }
    }

    memset(w->used, 0, (size_t)(m + num_dup));
    for (v = 0; v < n; v++) w->cursor[v] = w->ptr_aug[v];
    for (int64_t ci = 0; ci < num_components; ci++) {
        int64_t segment = out, top = 1, lo, hi;
        c = w->component_order[ci];
        w->stack_node[0] = w->start[c];
        w->stack_edge[0] = -1;
        while (top > 0) {
            int64_t stop;
            v = w->stack_node[top - 1];
            k = w->cursor[v];
            stop = w->ptr_aug[v + 1];
            while (k < stop && w->used[w->adj_aug[k]]) k++;
            if (k < stop) {
                e = w->adj_aug[k];
                w->cursor[v] = k + 1;
                w->used[e] = 1;
                w->stack_node[top] = w->eu_aug[e] == v ? w->ev_aug[e] : w->eu_aug[e];
                w->stack_edge[top] = e;
                top++;
            } else {
                w->cursor[v] = k;
                top--;
                out_node[out] = w->stack_node[top];
                out_edge[out] = w->stack_edge[top];
                out++;
            }
        }
        for (lo = segment, hi = out - 1; lo < hi; lo++, hi--) {
            int64_t t = out_node[lo]; out_node[lo] = out_node[hi]; out_node[hi] = t;
            t = out_edge[lo]; out_edge[lo] = out_edge[hi]; out_edge[hi] = t;
        }
        for (i = segment; i < out; i++) {
            int8_t flags = 0;
            if (i == segment) { out_edge[i] = -1; out_flags[i] = 4; continue; }
            e = out_edge[i];
            if (e >= m) flags |= 1;
            if (w->eu_aug[e] != out_node[i - 1]) flags |= 2;
            out_edge[i] = e >= m ? w->duplicates[e - m] : e;
            out_flags[i] = flags;
        }
    }

    for (v = 0; v < n; v++) rank[v] = -1;
    k = 0;
    for (i = 0; i < out; i++) if (rank[out_node[i]] < 0) rank[out_node[i]] = k++;
    return out;
}

/* Returns 0 on success, -1 when memory runs out, -2 when a walk exceeds its capacity. */
int64_t gfm_euler_walk_batch(int64_t num_graphs, const int64_t *node_ptr, const int64_t *edge_ptr,
                             const int64_t *eu, const int64_t *ev, const uint64_t *seeds,
                             const uint8_t *randomize, int64_t *visit_ptr, int64_t *visit_node,
                             int64_t *visit_edge, int8_t *visit_flags, int64_t *rank) {
    int64_t max_n = 1, max_m = 1, g, status = 0;
    workspace_t w;
    for (g = 0; g < num_graphs; g++) {
        int64_t n = node_ptr[g + 1] - node_ptr[g], m = edge_ptr[g + 1] - edge_ptr[g];
        if (n > max_n) max_n = n;
        if (m > max_m) max_m = m;
    }
    {
        /* 17 node-sized arrays, then adj, adj_aug (2 * ma each), eu_aug, ev_aug, stack_node,
           stack_edge (ma each); a walk has at most m + n visits and n - 1 duplicates. */
        int64_t na = max_n + 1, ma = max_m + max_n + 1;
        int64_t *block = (int64_t *)malloc(sizeof(int64_t) * (size_t)(17 * na + 8 * ma));
        uint8_t *used = (uint8_t *)malloc((size_t)ma);
        int64_t *p = block;
        if (!block || !used) { free(block); free(used); return -1; }
        w.degree = p; p += na; w.ptr = p; p += na; w.fill = p; p += na; w.component = p; p += na;
        w.parent = p; p += na; w.parent_edge = p; p += na; w.order = p; p += na; w.begin = p; p += na;
        w.parity = p; p += na; w.in_join = p; p += na; w.best = p; p += na; w.best_node = p; p += na;
        w.start = p; p += na; w.duplicates = p; p += na; w.ptr_aug = p; p += na; w.cursor = p; p += na;
        w.component_order = p; p += na;
        w.adj = p; p += 2 * ma; w.adj_aug = p; p += 2 * ma; w.eu_aug = p; p += ma; w.ev_aug = p; p += ma;
        w.stack_node = p; p += ma; w.stack_edge = p; p += ma;
        w.used = used;
        visit_ptr[0] = 0;
        for (g = 0; g < num_graphs; g++) {
            int64_t n = node_ptr[g + 1] - node_ptr[g], m = edge_ptr[g + 1] - edge_ptr[g];
            int64_t base = visit_ptr[g];
            int64_t count = walk_one(n, m, eu + edge_ptr[g], ev + edge_ptr[g], seeds[g], randomize[g], &w,
                                     visit_node + base, visit_edge + base, visit_flags + base,
                                     rank + node_ptr[g]);
            if (count > n + m) { status = -2; break; }
            visit_ptr[g + 1] = base + count;
        }
        free(block);
        free(used);
    }
    return status;
}

/* Tokens and position links of a batch from its segments; see emit_tokens_numpy (same output). */
static int64_t copy_segment(int64_t start, int64_t length, int64_t node, const int64_t *pool,
                            const int64_t *pool_node, int64_t *ids, int64_t *node_index, int64_t t) {
    for (int64_t i = 0; i < length; i++, t++) {
        ids[t] = pool[start + i];
        node_index[t] = node == -2 ? pool_node[start + i] : node;
    }
    return t;
}

static void add_link(int64_t a, int64_t b, int64_t type, int64_t *src, int64_t *dst, int64_t *types, int64_t *l) {
    src[*l] = a;
    dst[*l] = b;
    types[*l] = type;
    (*l)++;
}

void gfm_euler_emit(int64_t num_graphs, const int64_t *segment_ptr, const int64_t *segment_start,
                    const int64_t *segment_length, const int64_t *segment_node, const int64_t *pool,
                    const int64_t *pool_node,
                    const int64_t *visit_ptr, const int8_t *visit_flags, const uint8_t *directed,
                    int64_t *token_ptr, int64_t *ids, int64_t *node_index, int64_t *link_ptr,
                    int64_t *link_src, int64_t *link_dst, int64_t *link_type) {
    int64_t t = 0, l = 0;
    for (int64_t g = 0; g < num_graphs; g++) {
        int64_t base = t, s = segment_ptr[g], previous = -1;
        token_ptr[g] = t;
        link_ptr[g] = l;
        t = copy_segment(segment_start[s], segment_length[s], segment_node[s], pool, pool_node, ids, node_index, t);
        s++;
        for (int64_t v = visit_ptr[g]; v < visit_ptr[g + 1]; v++, s += 3) {
            int64_t step_start = t, step_end, head, flags = visit_flags[v];
            t = copy_segment(segment_start[s], segment_length[s], segment_node[s], pool, pool_node, ids,
                             node_index, t);
            t = copy_segment(segment_start[s + 1], segment_length[s + 1], segment_node[s + 1], pool, pool_node,
                             ids, node_index, t);
            step_end = t;
            head = t - base;
            t = copy_segment(segment_start[s + 2], segment_length[s + 2], segment_node[s + 2], pool, pool_node,
                             ids, node_index, t);
            if (!(flags & 4)) {
                if (flags & 1) {
                    add_link(previous, head, 2, link_src, link_dst, link_type, &l);
                    add_link(head, previous, 2, link_src, link_dst, link_type, &l);
                } else if (directed[g]) {
                    int64_t a = (flags & 2) ? head : previous, b = (flags & 2) ? previous : head;
                    add_link(a, b, 0, link_src, link_dst, link_type, &l);
                    add_link(b, a, 1, link_src, link_dst, link_type, &l);
                } else {
                    add_link(previous, head, 0, link_src, link_dst, link_type, &l);
                    add_link(head, previous, 0, link_src, link_dst, link_type, &l);
                }
                for (int64_t k = step_start; k < step_end; k++) {
                    int64_t token = k - base;
                    add_link(token, previous, 3, link_src, link_dst, link_type, &l);
                    add_link(previous, token, 3, link_src, link_dst, link_type, &l);
                    add_link(token, head, 3, link_src, link_dst, link_type, &l);
                    add_link(head, token, 3, link_src, link_dst, link_type, &l);
                }
            }
            previous = head;
        }
        t = copy_segment(segment_start[s], segment_length[s], segment_node[s], pool, pool_node, ids, node_index, t);
    }
    token_ptr[num_graphs] = t;
    link_ptr[num_graphs] = l;
}
