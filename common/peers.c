#include "peers.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a over the 16 bytes: addresses are not secret and the table is
 * bounded, so a flood of colliding addresses costs probes, not memory. */
static size_t hash(const sw_peer_addr *a)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++) {
        h ^= a->b[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

int sw_peers_init(sw_peers *p, size_t max_addresses)
{
    size_t n = 16;
    while (n < 2 * max_addresses)
        n *= 2;
    p->slots = calloc(n, sizeof *p->slots);
    p->mask = n - 1;
    p->used = 0;
    return p->slots ? 0 : -1;
}

static size_t find(const sw_peers *p, const sw_peer_addr *a)
{
    size_t i = hash(a) & p->mask;
    while (p->slots[i].count != 0 && memcmp(&p->slots[i].addr, a, sizeof *a) != 0)
        i = (i + 1) & p->mask;
    return i;
}

long sw_peers_add(sw_peers *p, const sw_peer_addr *a, uint32_t limit)
{
    size_t i = find(p, a);
    struct sw_peer_slot *s = &p->slots[i];
    if (s->count == 0) {
        /* Keep the load at most one half, so probes stay short. */
        if (2 * (p->used + 1) > p->mask + 1)
            return -1;
        s->addr = *a;
        s->bytes = 0;
        p->used++;
    } else if (limit != 0 && s->count >= limit) {
        return -1;
    }
    return (long)++s->count;
}

void sw_peers_remove(sw_peers *p, const sw_peer_addr *a)
{
    size_t i = find(p, a);
    if (p->slots[i].count == 0 || --p->slots[i].count > 0)
        return;
    /* Backward-shift deletion: pull later members of the probe run into
     * the hole when their home slot allows it. */
    p->used--;
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & p->mask;
        if (p->slots[j].count == 0)
            break;
        size_t home = hash(&p->slots[j].addr) & p->mask;
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            p->slots[hole] = p->slots[j];
            hole = j;
        }
    }
    p->slots[hole].count = 0;
}

int sw_peers_charge(sw_peers *p, const sw_peer_addr *a, int64_t delta, uint64_t limit)
{
    struct sw_peer_slot *s = &p->slots[find(p, a)];
    if (s->count == 0)
        return delta > 0 ? -1 : 0;
    if (delta > 0 && limit != 0 && s->bytes + (uint64_t)delta > limit)
        return -1;
    s->bytes = delta < 0 && (uint64_t)-delta > s->bytes ? 0 : s->bytes + (uint64_t)delta;
    return 0;
}

void sw_peers_free(sw_peers *p)
{
    if (p == NULL)
        return;
    free(p->slots);
    p->slots = NULL;
}
