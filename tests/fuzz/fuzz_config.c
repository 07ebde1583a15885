/* libFuzzer target: the config file parser (inih underneath, our column
 * lists, keys and checks on top), then the tokens-file parser over the
 * same bytes with the config it produced. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base[] = "[sink.orders]\ntable = orders\ncolumns = id bigint\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    sw_config cfg;
    if (sw_config_load_string(&cfg, "fuzz.ini", text) == 0) {
        if (cfg.err != 0)
            abort();
        for (int i = 0; i < cfg.nsinks; i++) {
            if (cfg.sinks[i].ncolumns < 1 || cfg.sinks[i].ncolumns > SW_SINK_MAX_COLUMNS)
                abort();
        }
    } else if (cfg.errstr[0] == '\0') {
        abort();
    }
    sw_config_free(&cfg);

    /* The sinks a tokens line may name: loaded once, kept for the run. */
    static sw_config known;
    static int ready;
    if (!ready) {
        if (sw_config_load_string(&known, "base.ini", base) != 0)
            abort();
        ready = 1;
    }
    sw_auth a;
    if (sw_auth_parse(&a, "tokens", text, &known) != 0 && a.errstr[0] == '\0')
        abort();
    enum sw_auth_result res;
    const sw_auth_entry *e = sw_auth_check(&a, text, &res);
    if (e && res != SW_AUTH_OK)
        abort();
    sw_auth_free(&a);
    free(text);
    return 0;
}
