#ifndef SW_ENVELOPE_H_
#define SW_ENVELOPE_H_

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* The queue envelope: one job, as a sequence of msgpack objects.
 *
 *  byte  object             version 2 (written since 0.2)
 *     0  positive fixint    format version (2)
 *     1  uint32 (0xce)      number of records     } fixed width, so the
 *     6  uint64 (0xcf)      enqueue time, Unix us } Redis scripts read
 *    15  str8 (0xd9, 36)    job id (UUID text)    } them by offset
 *    53  uint64 (0xcf)      the sink's shape fingerprint (shape.h)
 *    62  str                sink name
 *     …  uint               columns per record
 *     …  array(columns)     one per record: nil | bool | int | float64 | str
 *
 * Version 1 (release 0.1) is the same without the shape fingerprint.
 *
 * Version 3 (merge sinks, deletes, sinks with a version_column) adds two
 * fields after the fingerprint, so the sink name moves to byte 72:
 *    62  uint64 (0xcf)      the job's sequence: 0 as the server writes it,
 *                           stamped by the enqueue script (lua/enqueue.lua)
 *    71  positive fixint    what the job does: 0 write, 1 delete
 * and a record value may be "absent" (fixext1 0xd4, type 1, data 0): the
 * record did not name the column (merge), or it is not a key column (a
 * delete). All three versions are read. Record values are positional, in
 * the column order of the shape the job was written under. */
#define SW_ENVELOPE_VERSION 2
#define SW_ENVELOPE_V3 3
#define SW_ENVELOPE_SEQ_OFFSET 62     /* version 3: 0xcf + 8 bytes */
#define SW_ENVELOPE_KIND_OFFSET 71    /* version 3 */
#define SW_ENVELOPE_SINK_OFFSET_V3 72
#define SW_ENVELOPE_HEAD_LEN 15       /* version, count and time */
#define SW_ENVELOPE_ID_OFFSET 15      /* 0xd9, 36, then the id */
#define SW_ENVELOPE_ID_LEN 36
#define SW_ENVELOPE_SHAPE_OFFSET 53   /* version 2: 0xcf + 8 bytes */
#define SW_ENVELOPE_SINK_OFFSET 62    /* version 2: the sink's str header (1: at 53) */
/* Decoding refuses more columns than this, so a caller's array of this
 * many sw_values always holds a record (found by fuzzing: a forged
 * envelope could claim 65,535). */
#define SW_ENVELOPE_MAX_COLUMNS 128
#define SW_ENVELOPE_COUNT_OFFSET 1    /* 0xce + 4 bytes, big-endian */
#define SW_ENVELOPE_TIME_OFFSET 6     /* 0xcf + 8 bytes, big-endian */

enum sw_value_kind { SW_V_NULL, SW_V_BOOL, SW_V_INT, SW_V_FLOAT, SW_V_STR, SW_V_ABSENT };

/* What a job does to its records' rows (version 3; older jobs write). */
enum sw_op { SW_OP_WRITE = 0, SW_OP_DELETE = 1 };

/* One decoded value; strings point into the envelope's bytes. */
typedef struct sw_value {
    enum sw_value_kind kind;
    int64_t i;          /* SW_V_INT, and SW_V_BOOL as 0/1 */
    double f;           /* SW_V_FLOAT */
    const char *s;      /* SW_V_STR, not NUL-terminated */
    size_t n;
} sw_value;

/* A decoded header plus a cursor over the records. */
typedef struct sw_envelope {
    int version;
    uint64_t shape;      /* version 2: the sink's shape fingerprint; 1: 0 */
    uint64_t seq;        /* version 3: the enqueue script's sequence; else 0 */
    enum sw_op op;       /* version 3: write or delete; else write */
    uint32_t nrecords;
    uint32_t ncolumns;
    int64_t enqueued_us;
    char job_id[40];
    char sink[64];
    const unsigned char *records;   /* first record */
    const unsigned char *end;       /* one past the last byte */
} sw_envelope;

/* Write the header into `pk`, with a record count of 0 to be patched by
 * sw_envelope_finish(): version 2 for a plain write, else (`v3`, or a
 * delete) version 3 with sequence 0 and `op`. 0, or -1 when the packer's
 * buffer fails. */
__attribute__((warn_unused_result))
int sw_envelope_begin(msgpack_packer *pk, const char *job_id, const char *sink,
                      uint64_t shape, uint32_t ncolumns, int64_t enqueued_us, int v3,
                      enum sw_op op);

/* Append the absent marker (version 3 only). 0, or -1. */
__attribute__((warn_unused_result)) int sw_envelope_pack_absent(msgpack_packer *pk);

/* Patch the record count into an envelope that starts at `data`. */
void sw_envelope_finish(char *data, uint32_t nrecords);

/* Decode and check a whole envelope of `len` bytes: header, and every
 * record against the byte count (no count is trusted before the bytes it
 * claims are there, the job id must be a UUID, at most
 * SW_ENVELOPE_MAX_COLUMNS columns). Strings point into `data`, which must
 * outlive `env`.
 * 0, or -1 with a reason in errstr. */
__attribute__((warn_unused_result))
int sw_envelope_decode(const void *data, size_t len, sw_envelope *env, char *errstr,
                       size_t errlen);

/* A hash of the first record's values in the columns flagged in
 * `is_key` (`nkey_flags` flags, column order), without decoding the
 * rest: the queue shard of a job on a sink with a conflict key, so one
 * key's one-record jobs share a shard and keep their order. Values hash
 * as the envelope holds them: numbers by value (any byte order, -0.0 as
 * 0.0), text by its bytes as sent (so "12.50" and "12.5" differ). 1
 * hashed into *out, 0 no record or no key column, -1 not an envelope.
 * Pure. */
__attribute__((warn_unused_result))
int sw_envelope_first_key_hash(const void *data, size_t len, const unsigned char *is_key,
                               int nkey_flags, uint64_t *out);

/* Set the shard digits (jobid.h) of the job id inside an envelope, as in
 * its job id. 0, or -1 when `data` has no id where envelopes keep it. */
__attribute__((warn_unused_result))
int sw_envelope_set_shard(void *data, size_t len, int shard);

/* Read the next record's values (env->ncolumns of them) into `vals` and
 * advance `*cursor` (start it at env->records). Only for envelopes that
 * sw_envelope_decode() accepted. 0, or -1 past the end. */
__attribute__((warn_unused_result))
int sw_envelope_next(const sw_envelope *env, const unsigned char **cursor, sw_value *vals);

/* Read the record count / enqueue time of an envelope by offset, as the
 * Redis scripts do. 0, or -1 when `len` is too short or the version is
 * unknown. */
__attribute__((warn_unused_result))
int sw_envelope_peek(const void *data, size_t len, uint32_t *nrecords, int64_t *enqueued_us);

/* The record count as the Redis scripts read it (lua/prelude.lua
 * env_count): the four bytes after SW_ENVELOPE_COUNT_OFFSET, whatever
 * the version byte says, or 0 when `len` is too short. The flusher's
 * counts must equal the scripts' to keep the in-flight totals exact. */
uint32_t sw_envelope_script_count(const void *data, size_t len);

/* The job id as the Redis scripts read it (lua/prelude.lua env_id): the
 * 36 bytes at SW_ENVELOPE_ID_OFFSET when the str8 header is there, else
 * none. Works on any bytes (even a NUL among them), so a corrupt envelope
 * still has a list id. Returns its length, 36 or 0; `out` is also
 * NUL-terminated. */
size_t sw_envelope_list_id(const void *data, size_t len, char out[SW_ENVELOPE_ID_LEN + 1]);

#endif
