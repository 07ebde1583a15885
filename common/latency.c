#include "latency.h"

const long long sw_lat_bounds_ms[SW_LAT_NBUCKETS - 1] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 3600000};

int sw_lat_bucket(long long ms)
{
    int i = 0;
    while (i < SW_LAT_NBUCKETS - 1 && ms > sw_lat_bounds_ms[i])
        i++;
    return i;
}

double sw_lat_quantile(const uint64_t *counts, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < SW_LAT_NBUCKETS; i++)
        total += counts[i];
    if (total == 0)
        return -1;
    double rank = q * (double)total, below = 0;
    for (int i = 0; i < SW_LAT_NBUCKETS; i++) {
        double n = (double)counts[i];
        if (n > 0 && below + n >= rank) {
            if (i == SW_LAT_NBUCKETS - 1)
                return (double)sw_lat_bounds_ms[SW_LAT_NBUCKETS - 2];
            double lo = i ? (double)sw_lat_bounds_ms[i - 1] : 0, hi = (double)sw_lat_bounds_ms[i];
            return lo + (hi - lo) * (rank - below) / n;
        }
        below += n;
    }
    return (double)sw_lat_bounds_ms[SW_LAT_NBUCKETS - 2];
}
