#ifndef SW_MIGRATE_H_
#define SW_MIGRATE_H_

#include "pgconn.h"

/* Apply the numbered *.sql files in `dir` that spillway.schema_migrations
 * does not list yet, in name order, each in its own transaction, under an
 * advisory lock so two runs cannot interleave. Running it again is a
 * no-op. Returns the number applied (>= 0), or -1 with pg->errstr naming
 * the file that failed (nothing of that file is applied). */
__attribute__((warn_unused_result)) int sw_migrate_run(sw_pg *pg, const char *dir);

#endif
