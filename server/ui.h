#ifndef SW_UI_H_
#define SW_UI_H_

#include <stddef.h>

/* The dashboard page (server/ui.html) and the API's OpenAPI 3.1
 * description (server/openapi.json), embedded at build time. */
extern const unsigned char sw_ui_html[];
extern const size_t sw_ui_html_len;
extern const unsigned char sw_openapi_json[];
extern const size_t sw_openapi_json_len;

#endif
