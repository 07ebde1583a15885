/* test-script-text NAME: print the Lua script NAME ("claim") exactly as
 * the daemons send it to Redis (shebang, envelope offsets, prelude, body),
 * so that a test can run it on a Redis state of its own making. */
#include <stdio.h>
#include <string.h>

#include "scripts.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test-script-text NAME\n");
        return 2;
    }
    for (int s = 0; s < SW_SCRIPT_COUNT; s++) {
        if (strcmp(sw_script_name((enum sw_script)s), argv[1]) != 0)
            continue;
        size_t len;
        const char *text = sw_script_text((enum sw_script)s, &len);
        if (text == NULL || fwrite(text, 1, len, stdout) != len)
            return 1;
        return 0;
    }
    fprintf(stderr, "test-script-text: no script named \"%s\"\n", argv[1]);
    return 2;
}
