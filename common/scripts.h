#ifndef SW_SCRIPTS_H_
#define SW_SCRIPTS_H_

#include <stddef.h>

/* The Lua scripts that change Spillway's keys, each in its own file under
 * common/lua/ (embedded at build time). Each file opens with its shebang
 * line and then names its KEYS and ARGV; every key a script touches comes
 * in KEYS. The text sent to Redis is the shebang line, the envelope
 * offsets from envelope.h, lua/prelude.lua, then the rest of the file. */
enum sw_script {
    SW_SCRIPT_ENQUEUE, SW_SCRIPT_STATS, SW_SCRIPT_CLAIM, SW_SCRIPT_RESUME, SW_SCRIPT_FINISH,
    SW_SCRIPT_RELEASE, SW_SCRIPT_TAKEOVER, SW_SCRIPT_HEARTBEAT, SW_SCRIPT_REQUEUE,
    SW_SCRIPT_DROP, SW_SCRIPT_CONVERT, SW_SCRIPT_OVERVIEW, SW_SCRIPT_STATUS, SW_SCRIPT_LEASE,
    SW_SCRIPT_MEMBERS, SW_SCRIPT_PURGE,
    SW_SCRIPT_AGES, SW_SCRIPT_LIVE, SW_SCRIPT_COUNT
};

/* The full text of script `s` and its length; its file name ("claim"). */
const char *sw_script_text(enum sw_script s, size_t *len);
const char *sw_script_name(enum sw_script s);

#endif
